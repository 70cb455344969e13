"""Neuron sets on the pages: every set the session can pick, and the form that saves one."""
from __future__ import annotations

import streamlit as st

from neuronlab import NeuronSet
from webui import state
from webui.guard import md
from webui.scans import current_safety
from webui.shipped import shipped_sets

SCAN_PREFIX = "scan#"  # names of a scan's sets in the set pickers, e.g. "scan#ss-zh"


def available_sets() -> dict[str, NeuronSet]:
    """The session's named sets, the sets of the scan the pages show (prefixed ``scan#``) and the shipped
    experiments' sets of the loaded built-ins (``shipped#``)."""
    current = current_safety()
    scan = {f"{SCAN_PREFIX}{name}": s for name, s in current[1].sets().items()} if current else {}
    return {**shipped_sets(), **scan, **state.neuron_sets()}


def save_set_form(neurons: NeuronSet, default_name: str, key: str) -> None:
    """Name + button that store ``neurons`` in the session's neuron sets."""
    name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    name = name_col.text_input("Set name", value=default_name, key=f"{key}_name:{default_name}").strip()
    if button_col.button(f"Save {len(neurons)} neurons as a set", key=f"{key}_save", disabled=not (name and neurons)):
        state.neuron_sets()[name] = neurons.renamed(name)
        st.success(f"Saved neuron set **{md(name)}** ({len(neurons)} neurons); use it on *Intervene & chat*.")
