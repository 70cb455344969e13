"""The layer view of Safety neurons: per layer, the safety neurons of each language, the effect of switching a
layer's set off, and the layer's share of the donor's weight change, on one layer axis; a click on a layer
focuses the heatmap and the tables on it."""
from __future__ import annotations

import streamlit as st

from neuronlab.analysis.scan import SafetyNeurons, ScanResult
from neuronlab.evaluation.neuron_effect import layer_effects
from neuronlab.experiments import heldout_prompts
from neuronlab.neurons.sets import NeuronSet
from neuronlab.plots import layer_view_figure
from neuronlab.transfer.ranking import weight_change_shares
from webui import state
from webui.functions import PageFunction
from webui.guard import guarded
from webui.jobs import job
from webui.models import compatibility, use
from webui.neuron_card import weight_change
from webui.widgets import chart

FOCUS = "layer_focus"  # the layer the heatmap and tables show alone (None: all)
LAYER_EFFECTS = "layer_effects"  # {(ModelKey, set name, top p): {label: [per layer]}} measured in this session
EFFECT_PER_LABEL = 4


def focus() -> int | None:
    return st.session_state.get(FOCUS)


def weight_shares() -> list[float] | None:
    """Each layer's share of the donor → target MLP weight change, when both are loaded and comparable."""
    keys = state.loaded_keys()
    if not {"donor", "target"} <= set(keys) or keys["donor"] == keys["target"]:
        return None
    if not compatibility(keys["donor"], keys["target"]).compatible:
        return None
    return weight_change_shares(weight_change(keys["donor"], keys["target"], "mlp"))


def measure(role: str, safety: SafetyNeurons, name: str) -> None:
    neurons = safety.sets()[name]
    with job("layer_effects", len(neurons.layers), "layers", "Switching each layer's neurons off…") as (report, keep), \
            use(role, with_patch=False) as lm:
        out = layer_effects(lm, neurons, heldout_prompts(["en"], EFFECT_PER_LABEL), "en", progress=report)
        keep(out, len(neurons.layers))
    st.session_state.setdefault(LAYER_EFFECTS, {})[(state.loaded_keys()[role], name, safety.top_p)] = out


def layer_view(result: ScanResult, safety: SafetyNeurons, role: str, heatmap_layers_key: str,
               fn: PageFunction) -> None:
    st.subheader(f"Where safety lives in {result.model}, layer by layer" if fn.name == "refusal" else
                 f"Where the {fn.neurons} ({fn.title}) sit in {result.model}, layer by layer")
    sets = safety.sets()
    shown = {f"MS {safety.high_resource}": safety.ms.get(safety.high_resource),
             "MS, any language": NeuronSet(n for s in safety.ms.values() for n in s),
             "SS (union)": sets.get("ss"), "shared (every language)": sets.get("shared")}
    counts = {label: [s.per_layer_counts().get(layer, 0) for layer in range(result.n_layers)]
              for label, s in shown.items() if s is not None}
    measurable, effect, name = fn.name == "refusal", None, ""  # the layer effect is a change of the refusal score
    if measurable:
        name = st.selectbox("Set to switch off layer by layer", list(sets), key="lv_set",
                            index=list(sets).index("ss") if "ss" in sets else 0)
        effect = st.session_state.get(LAYER_EFFECTS, {}).get((state.loaded_keys().get(role), name, safety.top_p))
        if effect is None and st.button(f"Measure each layer's effect ({name}, English, {EFFECT_PER_LABEL} held-out "
                                        "prompts per label)", key="lv_measure"):
            measure(role, safety, name)
            st.rerun()
    event = chart(layer_view_figure(counts, effect, weight_shares(), counts_title=fn.neurons),
                  "layer_view",
                  "one column per layer. Top: how many of each set's neurons sit there. "
                  + ("Middle (once measured): the change of the refusal score when that layer's "
                     f"{name} neurons are switched off together. " if measurable else "") + "Bottom "
                  "(with a donor loaded): the layer's share of all donor − target weight change. Click a bar to "
                  "show that layer alone in the heatmap and the table.", on_select="rerun", selection_mode="points")
    clicked = [p.get("x") for p in (event.selection.points if event else []) if p.get("x") is not None]
    if clicked and clicked[-1] != st.session_state.get(f"{FOCUS}_clicked"):
        st.session_state[FOCUS] = st.session_state[f"{FOCUS}_clicked"] = int(clicked[-1])
        st.session_state[heatmap_layers_key] = (int(clicked[-1]), int(clicked[-1]))
    if (layer := focus()) is not None:
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.info(f"Layer {layer} only, in the heatmap and the table below.")
        right.button("All layers", key="lv_all", on_click=guarded(show_all), args=(heatmap_layers_key, result.n_layers))


def show_all(heatmap_layers_key: str, n_layers: int) -> None:
    st.session_state[FOCUS] = None
    st.session_state[heatmap_layers_key] = (0, n_layers - 1)
