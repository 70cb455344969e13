"""GGUF files load once, then from a local safetensors cache.

transformers dequantises a GGUF to float32 on load (~25 s for a 135M model) and refuses
``save_pretrained`` on the result, so the state dict, config and tokenizer are written to a cache folder
by hand; later loads read that folder with the ordinary ``from_pretrained`` (a few seconds).
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path

from neuronlab.errors import ModelSpecError
from neuronlab.files import building_dir
from neuronlab.paths import cache_root
from neuronlab.progress import Progress, no_progress

CACHE_FORMAT = 1



def gguf_architecture(path: Path) -> str:
    """The ``general.architecture`` field of a GGUF file."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(str(path)).fields["general.architecture"]
    except (KeyError, ValueError, IndexError, OSError) as e:  # IndexError: a corrupt header
        raise ModelSpecError(f"{path}: not a readable GGUF file ({e})") from None
    return bytes(field.parts[field.data[0]]).decode()


def supported_gguf_architectures() -> list[str]:
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    return sorted(k for k in GGUF_CONFIG_MAPPING if k not in ("general", "tokenizer"))


def converted_folder(path: Path, key: str | None = None, progress: Progress = no_progress) -> Path:
    """A folder (config.json, model.safetensors, tokenizer) holding the GGUF at ``path`` dequantised.

    ``key`` names the cache entry; by default it comes from the file's path, size and mtime.
    """
    import transformers

    if key is None:
        stat = path.stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    key = f"{key}:{CACHE_FORMAT}:{transformers.__version__}"
    folder = cache_root() / "gguf" / f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (folder / "model.safetensors").is_file():
        return folder
    arch = gguf_architecture(path)
    if arch not in supported_gguf_architectures():
        raise ModelSpecError(f"{path}: GGUF architecture {arch!r} is not supported; supported: "
                             f"{', '.join(supported_gguf_architectures())}")
    progress(0.05, f"converting {path.name} from GGUF (once; later loads use the cache)")
    _convert(path, folder)
    return folder


def _convert(path: Path, folder: Path) -> None:
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (ValueError, KeyError, OSError) as e:
        raise ModelSpecError(f"{path}: transformers could not load this GGUF ({e})") from None
    # a temp folder per process: two processes converting one file never collide; the first one done wins
    with building_dir(folder, complete=lambda f: (f / "model.safetensors").is_file()) as tmp:
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))  # handles tied embeddings
