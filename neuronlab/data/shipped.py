"""Results shipped for the built-in models in ``assets/results`` (read-only; written by ``ship``).

- ``scans/<key>.safetensors``: one (language, label) part of a scan, under the same key as the user's scan
  cache (``scan._cache_key``: model fingerprint, prompts, method, sites, settings). Scores are stored as
  float16 (float32 where float16 would overflow) with metadata naming the model, method, language, label
  and key; ``scan_part`` returns them as float32 after checking the metadata, names, shapes and values.
- ``experiments/<name>.json``: one standard experiment (``EXPERIMENTS``), a document
  ``{"format", "name", "kind", "models": {role: {"spec", "fingerprint"}}, "settings", "made_by", "result"}``
  that ``experiment`` returns only for the models it was made with and the settings defined here.

A file that fails its check is ignored with a warning (and the work is done live instead).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import safe_open, save_file

from neuronlab.files import write_atomic
from neuronlab.models.loading import LoadedModel
from neuronlab.paths import ASSETS

RESULTS_DIR = ASSETS / "results"
FORMAT = "neuronlab.shipped/1"
SCAN_FORMAT = "neuronlab.shipped-scan/1"
SCAN_MODELS = ("demo-target", "demo-donor", "gemma-target", "gemma-donor")
SCAN_METHODS = ("activation", "attribution")
SCAN_LANGS = ("en", "zh", "ko", "th", "bn", "sw", "ne", "es", "fr", "de")  # every bundled language
SCAN_SITE = "mlp"


@dataclass(frozen=True)
class Standard:
    """One standard experiment: its ``kind``, the built-in model of each role and its settings."""

    name: str
    kind: str  # "effects" (an intervention or patch with random controls) | "curve" (minimal-subset search)
    models: dict[str, str]  # role -> built-in model name
    settings: dict = field(default_factory=dict)  # "action" names the recipe: suppress | transfer | curve
    about: str = ""


def _suppress(langs: list[str], limit: int | None, max_new_tokens: int, seeds: int) -> dict:
    return {"action": "suppress", "scan": {"method": "activation", "lang": "en", "top_p": 0.08}, "langs": langs,
            "split": "heldout", "limit": limit, "max_new_tokens": max_new_tokens, "seeds": seeds, "batch_size": 8}


EXPERIMENTS: dict[str, Standard] = {s.name: s for s in (
    Standard("demo-donor-suppress", "effects", {"model": "demo-donor"},
             _suppress(["en"], None, 32, 3),
             "demo-donor with its own MS(en) (activation scan, top 8% per layer) switched off, beside random "
             "neurons of the same per-layer counts"),
    Standard("demo-transfer", "effects", {"donor": "demo-donor", "target": "demo-target"},
             {"action": "transfer", "ranking": "weight-diff", "count": 128, "langs": ["en"], "split": "heldout",
              "limit": None, "max_new_tokens": 32, "seeds": 3, "batch_size": 8},
             "the 128 neurons whose weights differ most copied from demo-donor into demo-target, beside random "
             "neurons copied the same way"),
    Standard("demo-curve", "curve", {"donor": "demo-donor", "target": "demo-target"},
             {"action": "curve", "ranking": "weight-diff", "lang": "en", "prompts_per_label": 24, "goal": 0.7, "max_ppl_change": 0.01,
              "max_false_refusal": 0.1, "max_fraction": 0.01, "start": 8, "seeds": 1, "threshold": 0.1},
             "the minimal-subset search demo-donor -> demo-target with the Transfer page's defaults"),
    Standard("gemma-donor-suppress", "effects", {"model": "gemma-donor"},
             _suppress(["en", "fr"], 30, 20, 1),  # en,de,fr,zh would take over 15 minutes on 2 CPU cores
             "gemma-donor with its own MS(en) switched off: English and French, a language it was never taught"),
)}


def results_root() -> Path:
    """The folder of shipped results (``RESULTS_DIR``)."""
    return RESULTS_DIR


# ---- scans ----------------------------------------------------------------------------------------

def scan_path(key: str) -> Path:
    return results_root() / "scans" / f"{key}.safetensors"


def storable(t: torch.Tensor) -> torch.Tensor:
    """The tensor as it is shipped: float16 unless that overflows, then float32."""
    half = t.detach().to(torch.float16)
    return half if bool(half.isfinite().all()) or not bool(t.isfinite().all()) else t.detach().float()


def expected_names(method: str, sites: tuple[str, ...]) -> set[str]:
    """The tensor names of one scan part (see ``scan._score``)."""
    kinds = ("importance", "mean") if method == "activation" else ("importance",)
    return {f"{kind}.{s}" for kind in kinds for s in sites}


def write_scan_part(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Ship one scan part: ``tensors`` {name: [L, N]} stored by ``storable``, ``meta`` as JSON strings."""
    stored = {k: storable(v).contiguous() for k, v in tensors.items()}
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in {"format": SCAN_FORMAT, **meta}.items()}
    return write_atomic(path, lambda tmp: save_file(stored, str(tmp), metadata=text))


def _scan_problem(meta: dict, tensors: dict[str, torch.Tensor], lm: LoadedModel, expected: dict) -> str:
    """Why a shipped scan part does not fit (empty when it does)."""
    for k, want in {"format": SCAN_FORMAT, **expected, "fingerprint": lm.info.fingerprint}.items():
        if meta.get(k) != want:
            return f"metadata {k} is {meta.get(k)!r}, expected {want!r}"
    names = expected_names(expected["method"], tuple(json.loads(expected["sites"])))
    if set(tensors) != names:
        return f"tensors {sorted(tensors)}, expected {sorted(names)}"
    for name, t in tensors.items():
        shape = (lm.arch.n_layers, lm.arch.sites[name.split(".", 1)[1]].size)
        if tuple(t.shape) != shape or not t.is_floating_point():
            return f"{name} is {t.dtype} {tuple(t.shape)}, expected floats of shape {shape}"
        if not bool(t.isfinite().all()):
            return f"{name} holds non-finite values"
    return ""


def scan_part(key: str, lm: LoadedModel, method: str, sites: tuple[str, ...], lang: str, label: str) -> dict | None:
    """The shipped tensors {name: float32 [L, N]} of one scan part, or None when none fits (a file that
    exists but fails its check is named in a warning)."""
    path = scan_path(key)
    if not path.is_file():
        return None
    expected = {"key": key, "method": method, "sites": json.dumps(list(sites)), "lang": lang, "label": label}
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        problem = _scan_problem(meta, tensors, lm, expected)
    except Exception as e:  # a truncated or foreign file: safetensors raises several kinds
        problem = f"unreadable ({type(e).__name__}: {e})"
    if problem:
        warnings.warn(f"shipped scan {path} ignored: {problem}; computing it instead", stacklevel=2)
        return None
    return {k: v.float() for k, v in tensors.items()}


# ---- experiments --------------------------------------------------------------------------------------

def experiment_path(name: str) -> Path:
    return results_root() / "experiments" / f"{name}.json"


def experiment(name: str, **fingerprints: str) -> dict | None:
    """The shipped document of experiment ``name`` when it was made with models of these fingerprints
    (by role, e.g. ``model=...`` or ``donor=..., target=...``) and, for a standard experiment, with the
    settings of ``EXPERIMENTS``; else None (a corrupt file is named in a warning)."""
    path = experiment_path(name)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("name") != name:
            raise ValueError(f"not a {FORMAT} document named {name!r}")
        if not isinstance(doc.get("models"), dict) or not isinstance(doc.get("result"), dict):
            raise ValueError("no models or result")
    except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        warnings.warn(f"shipped experiment {path} ignored: {e}", stacklevel=2)
        return None
    standard = EXPERIMENTS.get(name)
    if standard is not None and doc.get("settings") != standard.settings:
        return None  # made with other settings than the pages use
    models = doc["models"]
    if any(not isinstance(models.get(role), dict) or models[role].get("fingerprint") != fp
           for role, fp in fingerprints.items()):
        return None
    return doc
