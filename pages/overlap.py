"""Overlap: how the languages' safety neurons overlap, and the shared (SS) neurons per layer."""
import functools
import operator

import streamlit as st

import ui_common as ui
from neuronlab import NeuronSet
from neuronlab.plots import counts_by_language_figure, jaccard_figure, jaccard_matrix_figure, upset_figure, venn_figure
from neuronlab.scan import SafetyNeurons


def regions(safety: SafetyNeurons, langs: list[str]) -> dict[str, tuple[str, NeuronSet]]:
    """Regions a user can save, as {set name: (description, neurons)}; ``langs`` holds two or more languages."""
    ms = {lang: safety.ms[lang] for lang in langs}
    joined = "-".join(langs)
    out = {f"ss-{lang}": (f"SS-{lang} = MS({safety.high_resource}) ∩ MS({lang})", s) for lang, s in safety.ss.items()}
    out["shared"] = ("shared: in every scanned language's MS", safety.shared)
    for lang, s in ms.items():
        others = functools.reduce(operator.or_, (o for other, o in ms.items() if other != lang))
        out[f"only-{lang}"] = (f"MS({lang}) only: in none of the other chosen languages", s - others)
    out[f"and-{joined}"] = (f"intersection of {', '.join(langs)}", functools.reduce(operator.and_, ms.values()))
    out[f"or-{joined}"] = (f"union of {', '.join(langs)}", functools.reduce(operator.or_, ms.values()))
    return out


def overlap_charts(ms: dict[str, NeuronSet], layers: int) -> None:
    if len(ms) <= 3:
        ui.chart(venn_figure(ms), "overlap_venn", "Each number counts the safety neurons in exactly that region; "
                                                  "a set's total is next to its name.")
    else:
        ui.chart(upset_figure(ms), "overlap_upset", "Bars: neurons in exactly the sets marked by the dots below; "
                                                    "left: each language's MS size.")
    left, right = st.columns(2)
    with left:
        ui.chart(jaccard_figure(ms, layers), "overlap_jaccard_layers",
                 "Per layer, |A ∩ B| / |A ∪ B| for each language pair; blank where neither has neurons.")
    with right:
        ui.chart(jaccard_matrix_figure(ms), "overlap_jaccard_matrix",
                 "Jaccard similarity of the whole MS sets, every pair of languages.")


def shared_neurons(safety: SafetyNeurons, layers: int) -> None:
    st.subheader("Shared safety neurons (SS)")
    if not safety.ss:
        st.info(f"SS sets need {safety.high_resource} and another language in the scan.")
        return
    st.dataframe({"set": [f"SS-{lang}" for lang in safety.ss], "neurons": [len(s) for s in safety.ss.values()]},
                 hide_index=True)
    ui.chart(counts_by_language_figure(safety.ss, layers, title="Shared safety neurons per layer"), "overlap_ss",
             f"SS-LANG = MS({safety.high_resource}) ∩ MS(LANG), counted per layer; fewer SS neurons go with weaker "
             "safety in that language.")


ui.header("Overlap", "Which safety neurons the languages share: Venn/UpSet regions, Jaccard similarity, and the "
                     "shared (SS) neurons per layer.")
safety: SafetyNeurons | None = st.session_state.get("safety")
if safety is None:
    st.info("No scan yet: run one on the **Safety neurons** page first.")
    st.page_link("pages/safety_neurons.py", label="Go to Safety neurons", icon="🔥")
    st.stop()
layers = st.session_state["scan"].n_layers
names = list(safety.ms)
langs = st.multiselect("Languages (MS sets)", names, default=names[:3], key="overlap_langs", persist_state="session")
if len(langs) < 2:
    st.info("Choose at least two languages to compare.")
    st.stop()
overlap_charts({lang: safety.ms[lang] for lang in langs}, layers)
shared_neurons(safety, layers)
st.subheader("Save a region as a neuron set")
sets = regions(safety, langs)
name = st.selectbox("Region", list(sets), format_func=lambda n: sets[n][0], key="overlap_region")
ui.save_set_form(sets[name][1], name, "overlap_save")
