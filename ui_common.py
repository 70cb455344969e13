"""UI glue shared by app.py and the pages: the model cache, progress bars, neuron-set store, small tables.

Streamlit lives here and in the pages only; every computation is a call into ``neuronlab``.
"""
from __future__ import annotations

import json
import re
import tempfile
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from neuronlab import Architecture, LoadedModel, NeuronSet, NeuronSetError, load_model
from neuronlab.progress import Progress, no_progress
from neuronlab.prompts import PromptSet
from neuronlab.scan import SafetyNeurons, ScanResult, write_scan

ROLES = ("target", "donor")
DEMO = "demo-target"
SCAN_PREFIX = "scan#"  # names of a scan's sets in the set pickers, e.g. "scan#ss-zh"


class ModelKey(NamedTuple):
    """Everything a loaded model depends on; one cached model per key, shared by every session."""

    spec: str
    dtype: str = "float32"
    device: str = "cpu"
    trust_remote_code: bool = False


# ---- models -----------------------------------------------------------------------------------
class ModelStore:
    """Loaded models shared by every session: one per ModelKey, the ``size`` most recently loaded kept.

    (Not a cached function itself: Streamlit would record the progress bar updates made while loading and
    replay them on every cache hit.)"""

    def __init__(self, size: int = 4):
        self._models: OrderedDict[ModelKey, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key: ModelKey, progress: Progress = no_progress) -> LoadedModel:
        """The model for ``key``, loaded on first use (one load at a time). Raises ModelSpecError."""
        if (lm := self._models.get(key)) is not None:
            return lm
        with self._lock:
            if key not in self._models:
                self._models[key] = load_model(key.spec, key.dtype, key.device, key.trust_remote_code,
                                               progress=progress)
                while len(self._models) > self._size:
                    self._models.popitem(last=False)
            return self._models[key]


@st.cache_resource
def model_store() -> ModelStore:
    return ModelStore()


def load(key: ModelKey, where=st) -> LoadedModel:
    """The model for ``key``, with a progress bar while it loads. Raises ModelSpecError."""
    with progress(f"Loading {key.spec}…", where) as report:
        return model_store().get(key, report)


def model(role: str) -> LoadedModel | None:
    """The session's loaded target or donor, or None (with a hint) when none is loaded yet."""
    key = st.session_state.get("models", {}).get(role)
    if key is None:
        st.info(f"No {role} model loaded yet: pick one in the sidebar and press **Load models**.")
        return None
    return model_store().get(key)


def model_or_stop(role: str) -> LoadedModel:
    lm = model(role)
    if lm is None:
        st.stop()
    return lm


# ---- page furniture ---------------------------------------------------------------------------
def header(title: str, line: str) -> None:
    st.title(title)
    st.caption(line)


@contextmanager
def progress(text: str, where=st) -> Iterator[Progress]:
    """A progress bar fed by a ``progress(fraction, message)`` callback; removed when the work ends."""
    bar = where.progress(0.0, text=text)

    def report(fraction: float, message: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=message)
    try:
        yield report
    finally:
        bar.empty()


def chart(fig, key: str, caption: str) -> None:
    st.plotly_chart(fig, key=key)
    st.caption(caption)


# ---- neuron sets ------------------------------------------------------------------------------
def neuron_sets() -> dict[str, NeuronSet]:
    """The session's named neuron sets (name -> NeuronSet)."""
    return st.session_state.setdefault("neuron_sets", {})


def available_sets() -> dict[str, NeuronSet]:
    """The session's named sets plus the sets of its last scan (prefixed ``scan#``)."""
    safety: SafetyNeurons | None = st.session_state.get("safety")
    scan = {f"{SCAN_PREFIX}{name}": s for name, s in safety.sets().items()} if safety else {}
    return {**scan, **neuron_sets()}


def save_set_form(neurons: NeuronSet, default_name: str, key: str) -> None:
    """Name + button that store ``neurons`` in the session's neuron sets."""
    name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    name = name_col.text_input("Set name", value=default_name, key=f"{key}_name:{default_name}").strip()
    if button_col.button(f"Save {len(neurons)} neurons as a set", key=f"{key}_save", disabled=not (name and neurons)):
        neuron_sets()[name] = neurons.renamed(name)
        st.success(f"Saved neuron set **{name}** ({len(neurons)} neurons); use it on *Intervene & chat*.")


def sets_json(sets: dict[str, NeuronSet]) -> str:
    """{"sets": {name: set}}: the layout of a scan's neurons.json, readable as ``FILE#name``."""
    return json.dumps({"sets": {name: s.to_json() for name, s in sets.items()}}, indent=1)


def read_sets(content: bytes, filename: str) -> dict[str, NeuronSet]:
    """Neuron sets from an uploaded JSON file: one set, or {"sets": {name: set}}. Raises NeuronSetError."""
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NeuronSetError(f"{filename}: not valid JSON ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("sets"), dict) and "neurons" not in data:
        return {name: NeuronSet.from_json(s, name=name) for name, s in data["sets"].items()}
    one = NeuronSet.from_json(data, name=Path(filename).stem)
    return {one.name or Path(filename).stem: one}


def _span(token: str, size: int) -> range:
    if token == "*":
        return range(size)
    low, _, high = token.partition("-")
    return range(int(low), int(high or low) + 1)


def parse_neurons(text: str, arch: Architecture) -> NeuronSet:
    """Typed neurons: ``LAYER SITE INDEX`` entries split by ';' or new lines; LAYER and INDEX may be a
    range ``a-b`` or ``*`` (all), e.g. ``20 mlp 5; 0-1 mlp *``. Raises NeuronSetError."""
    items = []
    for entry in filter(str.strip, re.split(r"[;\n]", text)):
        parts = entry.replace(",", " ").split()
        if len(parts) != 3 or parts[1] not in arch.sites:
            raise NeuronSetError(f"{entry.strip()!r}: write LAYER SITE INDEX with SITE one of "
                                 f"{', '.join(arch.sites)}, e.g. '20 mlp 5' or '0-1 mlp *'")
        layer, site, index = parts
        try:
            items += [(lay, site, i) for lay in _span(layer, arch.n_layers) for i in _span(index, arch.sites[site].size)]
        except ValueError:
            raise NeuronSetError(f"{entry.strip()!r}: layer and index are numbers, ranges a-b or *") from None
    return NeuronSet(items).validate(arch)


# ---- prompts and scans ------------------------------------------------------------------------
def first_per_label(prompts: PromptSet, limit: int | None) -> PromptSet:
    """At most ``limit`` prompts per (language, label, split), in file order (all when limit is None)."""
    if not limit:
        return prompts
    seen: Counter = Counter()
    kept = []
    for p in prompts:
        seen[p.lang, p.label, p.split] += 1
        if seen[p.lang, p.label, p.split] <= limit:
            kept.append(p)
    return PromptSet(kept)


def scores_table(result: ScanResult, lang: str) -> pd.DataFrame:
    """One row per neuron of a scanned language: layer, site, index, both importances, contrast."""
    frames = []
    for site in result.sites:
        harmful = result.importance[lang]["harmful"][site].float().numpy()  # [layers, neurons]
        layers, width = harmful.shape
        frames.append(pd.DataFrame({
            "layer": np.repeat(np.arange(layers), width), "site": site, "index": np.tile(np.arange(width), layers),
            "importance harmful": harmful.ravel(),
            "importance harmless": result.importance[lang]["harmless"][site].float().numpy().ravel(),
            "contrast": result.contrast[lang][site].float().numpy().ravel()}))
    return pd.concat(frames, ignore_index=True)


def n_layers(result: ScanResult) -> int:
    lang = result.languages[0]
    return next(iter(result.contrast[lang].values())).shape[0]


def scan_json(result: ScanResult, safety: SafetyNeurons) -> bytes:
    """The scan's neurons.json (sets, parameters, stats), exactly as ``write_scan`` writes it."""
    with tempfile.TemporaryDirectory() as tmp:
        neurons_path, _ = write_scan(tmp, result, safety)
        return neurons_path.read_bytes()

