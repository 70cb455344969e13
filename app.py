"""NeuronLab in the browser: the sidebar picks and loads the target and donor models and shows what this session
has switched on; pages do the rest.

UI only: every computation lives in the ``neuronlab`` package (shared UI code in ``webui``, session state in
``webui.state``).
"""
import streamlit as st

from neuronlab.models.builtins import BUILTINS
from neuronlab.models.loading import DEVICES, DTYPES
from neuronlab.threads import use_default_threads
from webui import state
from webui.functions import function_picker
from webui.guard import guarded, md, run_page
from webui.models import DEMO, load_models
from webui.widgets import describe_interventions, patch_label

st.set_page_config(page_title="NeuronLab", page_icon="🧠", layout="wide")
use_default_threads()  # a core left free: torch on every core stalls when anything else runs

BUILT = [name for name, b in BUILTINS.items() if b.available]
OTHER = "other…"
PAGES = [
    st.Page("webui/pages/start.py", title="Start", icon="👋", default=True),
    st.Page("webui/pages/tour.py", title="Tour", icon="🎓"),
    st.Page("webui/pages/models.py", title="Models", icon="🧩"),
    st.Page("webui/pages/safety_neurons.py", title="Safety neurons", icon="🔥"),
    st.Page("webui/pages/overlap.py", title="Overlap", icon="🔗"),
    st.Page("webui/pages/neurons.py", title="Neurons", icon="🔎"),
    st.Page("webui/pages/intervene.py", title="Intervene & chat", icon="💬"),
    st.Page("webui/pages/transfer.py", title="Transfer", icon="🔀"),
    st.Page("webui/pages/evaluate.py", title="Evaluate", icon="📊"),
]


def spec_picker(role: str) -> str:
    """A built-in name, or what the user typed after choosing "other…"."""
    choice = st.sidebar.selectbox(f"{role.title()} model", BUILT + [OTHER], index=BUILT.index(DEMO[role]),
                                  key=state.picker(role))
    if choice != OTHER:
        return choice
    return st.sidebar.text_input(f"{role.title()}: hub id, local folder or .gguf path", key=f"{role}_spec",
                                 placeholder="org/name, /path/to/folder or /path/to/model.gguf").strip()


def session_status() -> None:
    """What this session has on, each with one click to clear it: models, weight patches, interventions (in the
    sidebar container that is open)."""
    st.subheader("This session")
    models = state.loaded_keys()
    if not models:
        st.caption("No model loaded yet.")
    for role, key in models.items():
        st.caption(f"✅ {role}: **{md(key.spec)}** ({key.dtype}, {key.device})")
    for role in models:
        if (patch := state.session_patch(role)) is not None:
            st.markdown(f"🩹 **{role} patched**: {patch_label(patch)}")
            st.button("Revert", key=f"clear_patch_{role}", icon=":material/close:", type="tertiary",
                      help=f"Revert the {role}'s weight patch", on_click=guarded(state.set_session_patch),
                      args=(role, None))
    for role, interventions in state.session_interventions().items():
        st.markdown(f"⚡ **{role} intervened**: {describe_interventions(interventions)}")
        st.button("Switch off", key=f"clear_iv_{role}", icon=":material/close:", type="tertiary",
                  help="Switch these neurons back on", on_click=guarded(state.clear_interventions))
    if models and not state.session_interventions() and not any(state.session_patch(r) for r in models):
        st.caption("No patch, no intervention: the models run as loaded.")


def sidebar() -> None:
    specs = {role: spec_picker(role) for role in state.ROLES}
    dtype = st.sidebar.selectbox("dtype", list(DTYPES), key=state.DTYPE)
    device = st.sidebar.selectbox("device", list(DEVICES), key=state.DEVICE)
    trust = st.sidebar.checkbox("trust remote code", value=False, key="trust_remote_code",
                                help="⚠️ Runs Python code that ships with a hub model on this machine. "
                                     "Leave off unless you trust its authors.")
    if st.sidebar.button("Load models", type="primary", key="load_models", width="stretch"):
        load_models(specs, dtype, device, trust, st.sidebar)
    for message in state.load_errors().values():
        st.sidebar.error(md(message))
    function_picker()


page = st.navigation(PAGES)
sidebar()
status = st.sidebar.container()
try:
    run_page(page)  # errors become messages on the page, never an exception box
finally:  # drawn after the page (whose widgets set interventions and patches), also when it stops early
    with status:
        session_status()
