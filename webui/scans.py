"""The scan the pages show: this session's last scan of the function picked in the sidebar, else (for refusal) the
one shipped for a loaded built-in; and its safety sets at the chosen top p."""
from __future__ import annotations

import streamlit as st

from neuronlab.analysis.scan import SafetyNeurons, ScanResult, run_scan
from neuronlab.data.prompts import BUNDLED_LANGUAGES, bundled_prompts
from neuronlab.models.host import use_together
from neuronlab.models.registry import ModelKey
from webui import state
from webui.functions import current
from webui.models import model_store


@st.cache_resource(max_entries=8, show_spinner=False)
def _stored_scan(key: ModelKey) -> ScanResult | None:
    """The model's activation scan of every bundled language, when it is stored (shipped for the built-ins) in
    full; shared by every session."""
    with use_together(model_store().get(key)) as (lm,):
        return run_scan(lm, bundled_prompts(), list(BUNDLED_LANGUAGES), compute=False)


def session_scan() -> ScanResult | None:
    """This session's last scan when it contrasts the picked function's labels (None before, or for another)."""
    scan, fn = state.scan(), current()
    return scan if scan is not None and fn is not None and scan.labels == fn.labels else None


def shipped_scan(role: str) -> ScanResult | None:
    """The stored refusal scan of the session's ``role`` model (None when it would have to be computed, or when the
    picked function is not refusal)."""
    key = state.loaded_keys().get(role)
    return _stored_scan(key) if key is not None and state.function() == "refusal" else None


def shown_scan() -> ScanResult | None:
    """The scan the pages show: this session's last scan of the function, else the one shipped for the model picked
    on Safety neurons (else for the other model); None when there is none."""
    if (scan := session_scan()) is not None:
        return scan
    first = state.scan_role()
    roles = [first] + [role for role in state.ROLES if role != first]
    return next((s for role in roles if (s := shipped_scan(role)) is not None), None)


def current_safety() -> tuple[ScanResult, SafetyNeurons] | None:
    """The scan the pages show and its safety sets at the chosen top p; None when there is no scan."""
    scan = shown_scan()
    return None if scan is None else (scan, state.safety_sets(scan))



