"""Load a causal LM from a built-in name, a local folder (safetensors), a .gguf file or a hub id."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from neuronlab.errors import ModelSpecError
from neuronlab.models.builtins import BUILTINS, builtin_folder
from neuronlab.models.gguf_cache import converted_folder
from neuronlab.neurons.patches import Patch, apply_patch, check_patch, fingerprint
from neuronlab.neurons.sites import Architecture, UnsupportedModelError, architecture_of
from neuronlab.progress import Progress, no_progress

ACCEPTED = ("accepted: a built-in name (" + ", ".join(BUILTINS) + "), a local folder with config.json and "
            "*.safetensors weights, a .gguf file, or a Hugging Face hub id (org/name)")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("cpu", "cuda", "auto")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ModelInfo:
    """What the app's model cards and the patch metadata show about a loaded model."""

    spec: str
    architecture: str  # model class name
    model_type: str
    family: str  # the neuron adapter
    n_layers: int
    neurons_per_layer: dict[str, int]  # site -> neurons in each layer
    n_params: int
    dtype: str
    device: str
    fingerprint: str  # sha256 of the weights' names, shapes, dtypes and bytes (first 16 hex digits)
    chat_template: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LoadedModel:
    """A model ready for neuron work: the transformers model, its tokenizer, adapter and info."""

    spec: str
    model: nn.Module
    tokenizer: object
    arch: Architecture
    info: ModelInfo

    @property
    def device(self) -> torch.device:
        """Where inputs go (the embedding's device for a model dispatched over devices)."""
        return self.model.get_input_embeddings().weight.device




def _device_label(model: nn.Module) -> str:
    device_map = getattr(model, "hf_device_map", None)
    if device_map and len(set(map(str, device_map.values()))) > 1:
        counts = Counter(str(d) for d in device_map.values())
        return "dispatched: " + ", ".join(f"{d}×{n}" for d, n in counts.items())
    return str(next(model.parameters()).device)


def _check_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise ModelSpecError(f"{path}: no config.json, so this is not a model folder; {ACCEPTED}")
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ModelSpecError(
                f"{path}: weights only as pickle files ({', '.join(pickles)}); NeuronLab loads safetensors "
                "only, because unpickling an untrusted file can run arbitrary code. Convert the weights to "
                "safetensors first")
        raise ModelSpecError(f"{path}: no *.safetensors weights; {ACCEPTED}")


def _check_causal_lm(source: str, trust_remote_code: bool) -> None:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelSpecError(f"{source}: could not read its config ({e}); {ACCEPTED}") from None
    remote = "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    # an encoder (BERT, RoBERTa, ...) whose type also has an LM-head class, saved as an encoder
    encoder = (getattr(config, "is_decoder", None) is False
               and not set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()) & set(config.architectures or ()))
    if (config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or encoder) and not remote:
        raise ModelSpecError(f"{source}: model type {config.model_type!r} is not a causal language model "
                             "(NeuronLab needs a decoder that generates text, e.g. Llama, Qwen, Gemma, GPT-2)")


def _resolve(spec: str, progress: Progress) -> str:
    """The folder or hub id that ``from_pretrained`` reads for ``spec``."""
    if spec in BUILTINS:
        return str(builtin_folder(spec, progress))
    path = Path(spec).expanduser()
    if spec.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelSpecError(f"{spec}: no such GGUF file; {ACCEPTED}")
        return str(converted_folder(path, progress=progress))
    if path.is_dir():
        _check_folder(path)
        return str(path)
    if path.exists():
        raise ModelSpecError(f"{spec}: a file, but not a .gguf; {ACCEPTED}")
    if spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1 or not _HUB_ID.match(spec):
        raise ModelSpecError(f"{spec}: no such folder or file; {ACCEPTED}")
    return spec  # a hub id


def _apply_shipped_patch(lm: LoadedModel, path: Path) -> None:
    """Write a built-in's shipped patch into ``lm``, its base model just loaded, and re-fingerprint it."""
    patch = Patch.load(path)  # shipped with NeuronLab; a test's chain may carry no fingerprint
    apply_patch(lm, check_patch(lm, patch, force=not patch.meta.get("target_fingerprint")), check_fingerprint=False)
    lm.info = replace(lm.info, fingerprint=fingerprint(lm.model))


def load_model(spec: str, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False,
               device_map: dict | str | None = None, progress: Progress = no_progress) -> LoadedModel:
    """Load ``spec`` for neuron work. ``device="auto"`` spreads a model over every GPU (and the CPU) with
    accelerate; ``device_map`` passes an explicit map instead. Raises ModelSpecError with a clear message."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.logging import disable_progress_bar

    disable_progress_bar()  # progress goes through ``progress`` instead
    if dtype not in DTYPES:
        raise ModelSpecError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if device not in DEVICES:
        raise ModelSpecError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelSpecError("device 'cuda' asked for, but torch sees no CUDA GPU; use cpu or auto")
    if device_map is None and device == "cuda":
        device_map = "cuda"
    elif device_map is None and device == "auto" and torch.cuda.is_available():
        device_map = "auto"
    source = _resolve(spec, progress)
    _check_causal_lm(source, trust_remote_code)
    progress(0.5, f"loading {spec}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model, loading_info = AutoModelForCausalLM.from_pretrained(
            source, dtype=DTYPES[dtype], device_map=device_map, use_safetensors=True,
            trust_remote_code=trust_remote_code, output_loading_info=True)
    except (OSError, ValueError) as e:
        raise ModelSpecError(f"{spec}: loading failed ({e}); {ACCEPTED}") from None
    if missing := sorted(loading_info.get("missing_keys") or ()):
        raise ModelSpecError(f"{spec}: the checkpoint lacks {len(missing)} weight(s) the model needs "
                             f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}); it is incomplete or "
                             "made for another model, and would run with random weights there")
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        arch = architecture_of(model)
    except UnsupportedModelError as e:
        raise ModelSpecError(f"{spec}: {e}") from None
    progress(0.9, "fingerprinting weights")
    info = ModelInfo(
        spec=spec, architecture=type(model).__name__, model_type=model.config.model_type,
        family=arch.family, n_layers=arch.n_layers, neurons_per_layer=arch.neurons_per_layer(),
        n_params=sum(p.numel() for p in model.parameters()), dtype=dtype, device=_device_label(model),
        fingerprint=fingerprint(model), chat_template=bool(getattr(tokenizer, "chat_template", None)))
    lm = LoadedModel(spec, model, tokenizer, arch, info)
    for path in BUILTINS[spec].patches if spec in BUILTINS else ():
        progress(0.95, f"applying {path.name}")
        _apply_shipped_patch(lm, path)
    progress(1.0, f"loaded {spec}")
    return lm
