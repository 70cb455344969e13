"""Models: what the target and donor are, and whether neurons can be copied from one to the other."""
import pandas as pd
import streamlit as st

from neuronlab.models.host import HostedModel
from neuronlab.plots import similarity_figure
from neuronlab.transfer.compatibility import Compatibility
from webui import state
from webui.guard import md
from webui.models import compatibility, model
from webui.widgets import chart, header


def info_card(role: str, shared: HostedModel) -> None:
    info = shared.info
    with st.container(border=True):
        st.subheader(f"{role.title()}: {md(info.spec)}")
        left, middle, right = st.columns(3)
        left.metric("parameters", f"{info.n_params / 1e6:,.1f} M")
        middle.metric("layers", info.n_layers)
        right.metric("chat template", "yes" if info.chat_template else "no")
        st.table(pd.DataFrame({"property": [
            "architecture", "family", "model type", "neurons per layer", "dtype", "device", "fingerprint"], "value": [
            info.architecture, info.family, info.model_type,
            ", ".join(f"{site} {n:,}" for site, n in info.neurons_per_layer.items()),
            info.dtype, info.device, info.fingerprint]}), hide_index=True, hide_header=True)


def verdict(result: Compatibility) -> None:
    if result.compatible:
        st.success("Compatible: same class, shapes, head layout and vocabulary, and the weights share a basis, "
                   "so neurons can be copied from the donor into the target.")
    else:
        st.warning("Not compatible for a neuron copy:\n" + "\n".join(f"- {md(p)}" for p in result.problems))
    if result.layer_similarity:
        chart(similarity_figure(result.layer_similarity), "models_similarity",
              "One bar per layer, labelled with the cosine similarity of the donor's and the "
              "target's MLP weights; its height is 1 − cosine on a log scale, so a taller bar is a layer that "
              "changed more. Fine-tunes of one base stay far below 0.5 (cosine near 1); unrelated models reach it, "
              "and copying neurons between them means nothing.")


header("Models", "What the loaded target and donor are, and whether neurons can move from donor to target.")
models = {}
for column, role in zip(st.columns(2), state.ROLES):
    with column:
        models[role] = model(role)
        if models[role] is not None:
            info_card(role, models[role])

st.subheader("Donor ↔ target compatibility")
keys = state.loaded_keys()
if all(models.values()):
    verdict(compatibility(keys["donor"], keys["target"]))
else:
    st.caption("Load both models to compare them.")
