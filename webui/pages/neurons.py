"""Neurons: every neuron set of this session, browsed one neuron at a time in the neuron card."""
import streamlit as st

from webui import state
from webui.functions import current_or_stop
from webui.neuron_card import neuron_card, open_on_new_pick
from webui.sets import available_sets
from webui.widgets import KEEP, header

fn = current_or_stop()
header("Neurons", f"Pick one of your neuron sets (saved, uploaded, or the {fn.title} scan's) and step through its "
                  "neurons: each opens in the neuron card — what it fires on, what it writes, what switching it off "
                  "does.")
sets = available_sets()
if not sets:
    st.info("No neuron sets yet: run a scan on **Safety neurons**, save a region on **Overlap**, or upload sets on "
            "**Intervene & chat**.")
    st.page_link("webui/pages/safety_neurons.py", label="Go to Safety neurons", icon="🔥")
    st.stop()
roles = [r for r in state.ROLES if r in state.loaded_keys()]
if not roles:
    st.info("Load a model in the sidebar first.")
    st.stop()
left, right = st.columns([3, 1])
name = left.selectbox("Neuron set", list(sets), key="nb_set", **KEEP,
                      format_func=lambda n: f"{n} ({len(sets[n]):,} neurons)")
role = right.radio("Model", roles, key="nb_model", horizontal=True, **KEEP)
neurons = sorted(sets[name])
if not neurons:
    st.info(f"{name} is empty.")
    st.stop()
st.dataframe({"layer": [n.layer for n in neurons], "site": [n.site for n in neurons],
              "index": [n.index for n in neurons]}, hide_index=True, height=180)
position = st.number_input(f"Neuron (1–{len(neurons):,} of the set, in layer order)", 1, len(neurons), 1,
                           key=f"nb_position:{name}")
fit = state.loaded_keys()[role]
neuron = neurons[position - 1]
open_on_new_pick("nb_browse", role, neuron)  # the card's own buttons may move it on from there
st.caption(f"Showing neuron {position} of {len(neurons):,}: layer {neuron.layer}, {neuron.site} {neuron.index} of "
           f"{fit.spec}. Step with − and + beside the number.")
neuron_card()
