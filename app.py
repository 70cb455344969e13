"""NeuronLab in the browser: the sidebar picks and loads the target and donor models; pages do the rest.

UI only: every computation lives in the ``neuronlab`` package (shared UI glue in ``ui_common``).
"""
import streamlit as st

import ui_common as ui
from neuronlab import ModelSpecError
from neuronlab.builtins import BUILTINS
from neuronlab.loading import DEVICES, DTYPES

st.set_page_config(page_title="NeuronLab", page_icon="🧠", layout="wide")

BUILT = [name for name, b in BUILTINS.items() if b.available]
OTHER = "other…"
PAGES = [
    st.Page("pages/models.py", title="Models", icon="🧩", default=True),
    st.Page("pages/safety_neurons.py", title="Safety neurons", icon="🔥"),
    st.Page("pages/overlap.py", title="Overlap", icon="🔗"),
    st.Page("pages/intervene.py", title="Intervene & chat", icon="💬"),
    st.Page("pages/transfer.py", title="Transfer", icon="🔀"),
    st.Page("pages/evaluate.py", title="Evaluate", icon="📊"),
    st.Page("pages/tour.py", title="Tour", icon="🎓"),
]


def spec_picker(role: str) -> str:
    """A built-in name, or what the user typed after choosing "other…"."""
    choice = st.sidebar.selectbox(f"{role.title()} model", BUILT + [OTHER], index=BUILT.index(ui.DEMO[role]),
                                  key=f"{role}_pick")
    if choice != OTHER:
        return choice
    return st.sidebar.text_input(f"{role.title()}: hub id, local folder or .gguf path", key=f"{role}_spec",
                                 placeholder="org/name, /path/to/folder or /path/to/model.gguf").strip()


def load_models(specs: dict[str, str], dtype: str, device: str, trust: bool) -> None:
    """Load each role's model (cached for every session); remember the keys and the errors per session."""
    loaded, errors = dict(st.session_state.get("models", {})), {}
    for role, spec in specs.items():
        loaded.pop(role, None)
        if not spec:
            errors[role] = f"{role}: enter a hub id, a local folder or a .gguf path"
            continue
        key = ui.ModelKey(spec, dtype, device, trust)
        try:
            ui.load(key, st.sidebar)
            loaded[role] = key
        except ModelSpecError as e:
            errors[role] = f"{role}: {e}"
    st.session_state["models"], st.session_state["load_errors"] = loaded, errors


def sidebar() -> None:
    specs = {role: spec_picker(role) for role in ui.ROLES}
    dtype = st.sidebar.selectbox("dtype", list(DTYPES), key="dtype")
    device = st.sidebar.selectbox("device", list(DEVICES), key="device")
    trust = st.sidebar.checkbox("trust remote code", value=False, key="trust_remote_code",
                                help="⚠️ Runs Python code that ships with a hub model on this machine. "
                                     "Leave off unless you trust its authors.")
    if st.sidebar.button("Load models", type="primary", key="load_models", width="stretch"):
        load_models(specs, dtype, device, trust)
    for role, key in st.session_state.get("models", {}).items():
        st.sidebar.caption(f"✅ {role}: **{key.spec}** ({key.dtype}, {key.device})")
    for message in st.session_state.get("load_errors", {}).values():
        st.sidebar.error(message)


page = st.navigation(PAGES)
sidebar()
page.run()
