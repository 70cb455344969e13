"""Load a causal LM from a built-in name, a local folder (safetensors), a .gguf file or a hub id."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
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
HUB_TIMEOUT = 10  # seconds to ask the hub whether a hub id exists, before anything is downloaded


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


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _hub_offline(spec: str) -> bool:
    """Whether hub id ``spec`` is read from the local cache only; raises ModelSpecError at once when it can be
    read from neither the cache nor the hub (no network, HF_HUB_OFFLINE set, no such model)."""
    from huggingface_hub import HfApi, constants, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    cached = isinstance(try_to_load_from_cache(spec, "config.json"), str)
    if constants.HF_HUB_OFFLINE:
        if cached:
            return True
        raise ModelSpecError(f"{spec}: a hub id that is not in the local Hugging Face cache, and HF_HUB_OFFLINE is set; "
                             f"download it once online, or give a built-in name, a local folder or a .gguf file")
    try:
        HfApi().model_info(spec, timeout=HUB_TIMEOUT)
    except GatedRepoError:
        raise ModelSpecError(f"{spec}: a gated model; accept its terms on huggingface.co and log in (hf auth login)") from None
    except RepositoryNotFoundError:
        raise ModelSpecError(f"{spec}: no such model on the Hugging Face hub (a private one needs hf auth login); "
                             f"{ACCEPTED}") from None
    except Exception as e:  # no network, a proxy, a timeout, a hub error: the hub cannot be asked
        if cached:
            return True
        raise ModelSpecError(f"{spec}: looks like a hub id, but huggingface.co cannot be reached ({type(e).__name__}) "
                             "and it is not in the local cache; connect to the internet, or give a built-in name, a "
                             "local folder or a .gguf file") from None
    return False


def _check_causal_lm(source: str, trust_remote_code: bool, offline: bool = False) -> None:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, local_files_only=offline)
    except (OSError, ValueError) as e:
        problem = _one_line(e).replace(f"{source}/", "").replace(source, "the folder")  # the spec named once
        raise ModelSpecError(f"{source}: could not read its config ({problem}); {ACCEPTED}") from None
    remote = "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    # an encoder (BERT, RoBERTa, ...) whose type also has an LM-head class, saved as an encoder
    encoder = (getattr(config, "is_decoder", None) is False
               and not set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()) & set(config.architectures or ()))
    if (config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or encoder) and not remote:
        raise ModelSpecError(f"{source}: model type {config.model_type!r} is not a causal language model "
                             "(NeuronLab needs a decoder that generates text, e.g. Llama, Qwen, Gemma, GPT-2)")


def _resolve(spec: str, progress: Progress) -> str:
    """The folder or hub id that ``from_pretrained`` reads for ``spec``."""
    if not spec.strip():
        raise ModelSpecError(f"no model given (the model spec {spec!r} is empty); {ACCEPTED}")
    if spec in BUILTINS:
        return str(builtin_folder(spec, progress))
    try:
        path = Path(spec).expanduser()
    except RuntimeError:  # ~user/... of no such user
        raise ModelSpecError(f"{spec}: no such folder or file (no home folder for {spec.split('/')[0]}); "
                             f"{ACCEPTED}") from None
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
    offline = source == spec and spec not in BUILTINS and not Path(spec).expanduser().exists() and _hub_offline(spec)
    _check_causal_lm(source, trust_remote_code, offline)
    progress(0.5, f"loading {spec}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, local_files_only=offline)
        model, loading_info = AutoModelForCausalLM.from_pretrained(
            source, dtype=DTYPES[dtype], device_map=device_map, use_safetensors=True, local_files_only=offline,
            trust_remote_code=trust_remote_code, output_loading_info=True)
    except SafetensorError:
        raise ModelSpecError(f"{spec}: loading failed: a .safetensors weights file cannot be read (damaged or cut "
                             "short); save or download the model again") from None
    except (OSError, ValueError) as e:
        raise ModelSpecError(f"{spec}: loading failed ({_one_line(e)}); {ACCEPTED}") from None
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
