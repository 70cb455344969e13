"""NeuronLab in the browser: pick a donor and a target model and see what they are.

UI only: every computation lives in the ``neuronlab`` package.
"""
import streamlit as st

from neuronlab import ModelSpecError, load_model
from neuronlab.builtins import BUILTINS

st.set_page_config(page_title="NeuronLab", page_icon="🧠", layout="wide")


@st.cache_resource(show_spinner=False, max_entries=4)
def cached_model(spec: str, dtype: str, device: str, trust_remote_code: bool):
    """One loaded model per spec, shared by every browser session."""
    return load_model(spec, dtype=dtype, device=device, trust_remote_code=trust_remote_code)


def model_picker(role: str, default: str) -> str:
    names = [name for name, b in BUILTINS.items() if b.folder is not None]
    choice = st.sidebar.selectbox(f"{role} model", names + ["other…"], index=names.index(default), key=f"{role}_pick")
    if choice == "other…":
        return st.sidebar.text_input(f"{role}: hub id, local folder or .gguf path", key=f"{role}_spec").strip()
    return choice


st.sidebar.title("🧠 NeuronLab")
specs = {"Target": model_picker("Target", "demo-target"), "Donor": model_picker("Donor", "demo-target")}
dtype = st.sidebar.selectbox("dtype", ["float32", "bfloat16", "float16"], key="dtype")
device = st.sidebar.selectbox("device", ["cpu", "cuda", "auto"], key="device")
trust = st.sidebar.checkbox("trust remote code", value=False, key="trust_remote_code",
                            help="Lets a hub model run its own Python code. Leave off unless you trust its authors.")

st.title("NeuronLab")
st.caption("Find, look at, switch and move the safety neurons of language models. "
           "Built-in demo models work offline; the first load of a built-in converts it once (about 30 s).")
for column, (role, spec) in zip(st.columns(2), specs.items()):
    with column:
        st.subheader(role)
        if not spec:
            st.info("Enter a model spec in the sidebar.")
            continue
        try:
            with st.spinner(f"Loading {spec}…"):
                lm = cached_model(spec, dtype, device, trust)
        except ModelSpecError as e:
            st.error(str(e))
            continue
        info = lm.info
        st.metric("parameters", f"{info.n_params / 1e6:,.1f} M")
        st.write(f"**{info.architecture}** ({info.family}), {info.n_layers} layers, {info.dtype} on {info.device}")
        st.write("neurons per layer: " + ", ".join(f"{site} {n}" for site, n in info.neurons_per_layer.items()))
        st.caption(f"fingerprint `{info.fingerprint}` · chat template: {'yes' if info.chat_template else 'no'}")
