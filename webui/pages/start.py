"""Start: what NeuronLab shows, and one click to the demo or the Tour."""
import streamlit as st

from neuronlab.paths import ASSETS
from webui import state
from webui.guard import guarded
from webui.models import DEMO, load_demo, pick_demo
from webui.widgets import header

PICTURE = ASSETS / "img" / "start.svg"

header("NeuronLab", "Find, look at, switch and move the safety neurons of a language model.")
st.markdown(
    "A language model that refuses harmful requests does so with a small set of **safety neurons**, "
    "a fraction of a percent of its MLP channels, and each language has its own.\n\n"
    "NeuronLab **finds** them from harmful vs harmless prompts, shows **where** they sit and which languages share "
    "them, lets you **switch them off** and chat with the result, and **copies** them into another model.\n\n"
    "Everything runs on this machine. The demo pair is SmolLM2-135M-Instruct (*demo-target*, which complies) and the "
    "same model taught to refuse (*demo-donor*).")
st.image(str(PICTURE), caption="Red: safety neurons. Switched off, the refusing model complies; copied into the "
                               "complying model, it refuses.", width="stretch")
left, right = st.columns(2)
loaded = state.loaded_keys()
demo_loaded = all(loaded.get(role) and loaded[role].spec == name for role, name in DEMO.items())
if left.button("Demo pair loaded ✓" if demo_loaded else "Load the demo pair", key="start_load", type="primary",
               width="stretch", disabled=demo_loaded, on_click=guarded(pick_demo),
               help="demo-target as the target and demo-donor as the donor; every page then works on them"):
    load_demo()
    st.rerun()
if right.button("Start the Tour →", key="start_tour", width="stretch",
                help="A guided walk in six steps; it loads what it needs itself"):
    st.switch_page("webui/pages/tour.py")
st.caption("Or pick your own models in the sidebar: a built-in, a Hugging Face hub id, a local folder or a .gguf file.")
