"""The browser session's state that more than one page (or the sidebar) reads: each key named once here, read
and written through the functions below. Widget keys that one page alone uses stay on that page."""
from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from neuronlab import Intervention, NeuronSet
from neuronlab.analysis.scan import DEFAULT_TOP_P, SafetyNeurons, ScanResult, select_sets
from neuronlab.data.prompts import PromptSet
from neuronlab.evaluation.metrics import RefusalEstimate
from neuronlab.models.registry import ModelKey
from neuronlab.neurons.patches import Patch
from neuronlab.neurons.sets import Neuron

if TYPE_CHECKING:
    from webui.functions import PageFunction

ROLES = ("target", "donor")  # the two models a session loads

MODELS = "models"  # {role: ModelKey} loaded in this session
LOAD_ERRORS = "load_errors"  # {role: message} of the last Load models
PATCHES = "patches"  # {role: (ModelKey, Patch)} weight patches applied in this session
INTERVENTIONS = "interventions"  # {role: [Intervention]} switched on on Intervene & chat
NEURON_SETS = "neuron_sets"  # {name: NeuronSet} saved or uploaded by the user
REFUSAL_ESTIMATES = "refusal_estimates"  # {ModelKey: RefusalEstimate} of the quick check
JOB_NOTES = "job_notes"  # {job key: JobNote} how each page's last job ended
SCAN = "scan"  # the ScanResult of this session's last scan (also the scan job's key)
INSPECTED = "inspected"  # (role, Neuron) the neuron card shows
FUNCTION = "function"  # the sidebar's function picker: refusal | bias | your own
USER_FUNCTION = "user_function"  # the user's own function (webui.functions.PageFunction), once its inputs check out
USER_PROMPTS = "user_prompts"  # (file name, PromptSet) of the last prompt file uploaded on Safety neurons
_SAFETY_MEMO = "safety_memo"  # (scan, SafetyNeurons): what safety_sets computed last, kept to skip recomputing
# widgets read beyond their page
DTYPE, DEVICE = "dtype", "device"  # sidebar
IV_SETS, IV_TYPED = "iv_sets", "iv_typed"  # Intervene & chat's set pickers, emptied from the sidebar
IV_TYPED_NAME = "typed neurons"  # the name Intervene & chat gives the typed neurons
IV_MODEL = "iv_model"  # the model Intervene & chat talks to
SCAN_TOP_P = "scan_top_p"  # Safety neurons' top p slider (percent)
SCAN_MODEL = "scan_model"  # Safety neurons' model picker


def picker(role: str) -> str:
    """The key of the sidebar's model picker of ``role``."""
    return f"{role}_pick"


# ---- models ---------------------------------------------------------------------------------------
def loaded_keys() -> dict[str, ModelKey]:
    """{role: ModelKey} of this session's loaded models."""
    return st.session_state.get(MODELS, {})


def set_loaded(keys: dict[str, ModelKey], errors: dict[str, str]) -> None:
    st.session_state[MODELS], st.session_state[LOAD_ERRORS] = keys, errors


def load_errors() -> dict[str, str]:
    return st.session_state.get(LOAD_ERRORS, {})


def sidebar_dtype_device() -> tuple[str, str]:
    """The dtype and device chosen in the sidebar."""
    return st.session_state.get(DTYPE, "float32"), st.session_state.get(DEVICE, "cpu")


def pick_models(specs: dict[str, str]) -> None:
    """Set the sidebar's model pickers (in a widget callback: before the pickers are drawn)."""
    for role, name in specs.items():
        st.session_state[picker(role)] = name


def function() -> str:
    """The function the pages show, as picked in the sidebar: "refusal" (the default), "bias" or "your own"."""
    return st.session_state.get(FUNCTION, "refusal")


def user_function() -> PageFunction | None:
    """The user's own function (a ``webui.functions.PageFunction``) once its sidebar inputs check out, else None."""
    return st.session_state.get(USER_FUNCTION)


def set_user_function(fn: PageFunction | None) -> None:
    st.session_state[USER_FUNCTION] = fn


def refusal_estimates() -> dict[ModelKey, RefusalEstimate]:
    """The quick refusal checks run in this session, by model."""
    return st.session_state.setdefault(REFUSAL_ESTIMATES, {})


# ---- weight patches and interventions (set on Transfer and Intervene, shown in the sidebar, measured on Evaluate)
def session_patch(role: str) -> Patch | None:
    """The weight patch this session applied to its ``role`` model (None when none, or the model changed)."""
    key, patch = st.session_state.get(PATCHES, {}).get(role, (None, None))
    return patch if key == loaded_keys().get(role) else None


def set_session_patch(role: str, patch: Patch | None) -> None:
    """Apply ``patch`` (checked against the model already) to this session's ``role`` model; None reverts."""
    patches = st.session_state.setdefault(PATCHES, {})
    if patch is None:
        patches.pop(role, None)
    else:
        patches[role] = (st.session_state[MODELS][role], patch)


def session_interventions() -> dict[str, list[Intervention]]:
    """{role: interventions} switched on in this session (only roles with at least one)."""
    return {role: ivs for role, ivs in st.session_state.get(INTERVENTIONS, {}).items() if ivs}


def set_interventions(role: str, interventions: list[Intervention]) -> None:
    """The interventions on ``role``'s model; the other role's are switched off (one model is intervened at a time)."""
    st.session_state[INTERVENTIONS] = {role: interventions} if interventions else {}


def suppress_in_chat(role: str, typed: str) -> None:
    """Make Intervene & chat open on ``role`` with the ``typed`` neurons switched off (and nothing else)."""
    st.session_state[IV_MODEL], st.session_state[IV_SETS], st.session_state[IV_TYPED] = role, [], typed
    st.session_state[f"iv_mode:{IV_TYPED_NAME}"] = "suppress"


def clear_interventions() -> None:
    """Switch every intervention off, and empty the Intervene page's pickers (a widget callback)."""
    st.session_state[INTERVENTIONS] = {}
    st.session_state[IV_SETS], st.session_state[IV_TYPED] = [], ""


# ---- neuron sets, scans and jobs ------------------------------------------------------------------
def neuron_sets() -> dict[str, NeuronSet]:
    """The session's named neuron sets (name -> NeuronSet)."""
    return st.session_state.setdefault(NEURON_SETS, {})


def scan() -> ScanResult | None:
    """This session's last scan (None before the first)."""
    return st.session_state.get(SCAN)


def top_p() -> float:
    """The share of neurons per layer the safety sets take, as chosen on Safety neurons."""
    return st.session_state.get(SCAN_TOP_P, DEFAULT_TOP_P * 100) / 100


def scan_role() -> str:
    """The role whose model Safety neurons scans (the donor until one is picked)."""
    return st.session_state.get(SCAN_MODEL, ROLES[1])


def safety_sets(scan: ScanResult) -> SafetyNeurons:
    """The safety sets of ``scan`` at the chosen top p, computed when asked (and kept while both stay the same),
    so that no page depends on another having been drawn first."""
    memo = st.session_state.get(_SAFETY_MEMO)
    if memo is None or memo[0] is not scan or memo[1].top_p != top_p():
        memo = st.session_state[_SAFETY_MEMO] = (scan, select_sets(scan, top_p()))
    return memo[1]


def job_notes() -> dict:
    """{job key: JobNote} of this session's jobs (see ``webui.jobs``)."""
    return st.session_state.setdefault(JOB_NOTES, {})


# ---- the neuron card --------------------------------------------------------------------------------
def inspected() -> tuple[str, Neuron] | None:
    """(role, neuron) of the neuron card, once a neuron was clicked anywhere."""
    return st.session_state.get(INSPECTED)


def user_prompts() -> tuple[str, PromptSet] | None:
    """(file name, prompts) of the last prompt file the user uploaded, if any."""
    return st.session_state.get(USER_PROMPTS)


def set_user_prompts(name: str, prompts: PromptSet) -> None:
    st.session_state[USER_PROMPTS] = (name, prompts)


def inspect(role: str, neuron: Neuron) -> None:
    """Open the neuron card on ``neuron`` of the ``role`` model."""
    layer, site, index = neuron
    st.session_state[INSPECTED] = (role, Neuron(int(layer), str(site), int(index)))
