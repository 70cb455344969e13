"""The session's target and donor: loading them (once for every session), reaching them with the session's
patch, and comparing them."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from neuronlab import LoadedModel, ModelSpecError
from neuronlab.models.host import HostedModel, use_together
from neuronlab.models.registry import ModelKey, ModelRegistry
from neuronlab.progress import beating, heartbeat
from neuronlab.transfer.compatibility import Compatibility, check_compatibility
from webui import state
from webui.widgets import progress, throttled

DEMO = {"target": "demo-target", "donor": "demo-donor"}  # the built-in demo pair, preselected


@st.cache_resource
def model_store() -> ModelRegistry:
    """The models loaded for every session. (The registry is the cached resource, not each model: Streamlit would
    record the progress bar updates made while loading and replay them on every cache hit.)"""
    return ModelRegistry()


def load(key: ModelKey, where=st) -> HostedModel:
    """The model for ``key``, with a progress bar while it loads. Raises ModelSpecError."""
    with progress(f"Loading {key.spec}…", where) as report:
        return model_store().get(key, report)


def load_models(specs: dict[str, str], dtype: str = "float32", device: str = "cpu", trust: bool = False,
                where=st) -> None:
    """Load each role's model (cached for every session); remember the keys and the errors per session."""
    loaded, errors = dict(state.loaded_keys()), {}
    for role, spec in specs.items():
        loaded.pop(role, None)
        if not spec:
            errors[role] = f"{role}: enter a hub id, a local folder or a .gguf path"
            continue
        key = ModelKey(spec, dtype, device, trust)
        try:
            load(key, where)
            loaded[role] = key
        except ModelSpecError as e:
            errors[role] = f"{role}: {e}"
    state.set_loaded(loaded, errors)


def pick_demo() -> None:
    """Set the sidebar's model pickers to the demo pair (a widget callback: runs before the pickers are drawn)."""
    state.pick_models(DEMO)


def load_demo(where=st) -> None:
    """Load the built-in demo pair as target and donor, with the sidebar's dtype and device."""
    load_models(dict(DEMO), *state.sidebar_dtype_device(), False, where)


def model(role: str) -> HostedModel | None:
    """The session's loaded target or donor, or None (with a hint) when none is loaded yet."""
    key = state.loaded_keys().get(role)
    if key is None:
        st.info(f"No {role} model loaded yet: pick one in the sidebar and press **Load models**.")
        return None
    return model_store().get(key)


def model_or_stop(role: str) -> HostedModel:
    shared = model(role)
    if shared is None:
        st.stop()
    return shared


@contextmanager
def use(role: str, with_patch: bool = True) -> Iterator[LoadedModel]:
    """The session's ``role`` model for a block of work: other sessions wait, and this session's patch
    (unless ``with_patch`` is False) is written in for the block only."""
    with waits_shown(), model_or_stop(role).use(state.session_patch(role) if with_patch else None) as lm:
        yield lm


@contextmanager
def together(*models: HostedModel) -> Iterator[list[LoadedModel]]:
    """``host.use_together`` (shared models as loaded, locked in a fixed order) with waits shown as in ``use``."""
    with waits_shown(), use_together(*models) as lms:
        yield lms


@contextmanager
def waits_shown() -> Iterator[None]:
    """Outside a progress bar (which shows it in its text), a wait for another session's work on a model is a
    note on the page, and the page's Stop acts during the wait and the work."""
    if beating():
        yield
        return
    slot = st.empty()

    def show(note: str) -> None:
        if note:
            slot.info(note, icon="⏳")
        else:
            slot.empty()
    try:
        with heartbeat(throttled(show)):
            yield
    finally:
        slot.empty()


@st.cache_resource(show_spinner="Comparing the weights…", max_entries=8)
def compatibility(donor: ModelKey, target: ModelKey) -> Compatibility:
    """Donor ↔ target compatibility of two loaded models (as loaded, without session patches)."""
    with use_together(model_store().get(donor), model_store().get(target)) as (d, t):
        return check_compatibility(d, t)
