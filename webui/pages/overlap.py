"""Overlap: how the languages' neurons of the picked function (safety neurons for refusal) overlap, and the shared
(SS) neurons per layer."""
import streamlit as st

from neuronlab import NeuronSet
from neuronlab.analysis.overlap import named_regions
from neuronlab.analysis.scan import SafetyNeurons
from neuronlab.plots import counts_by_language_figure, jaccard_figure, jaccard_matrix_figure, upset_figure, venn_figure
from webui import state
from webui.functions import PageFunction, current_or_stop
from webui.guard import md
from webui.neuron_card import neuron_card, open_on_new_pick
from webui.scans import current_safety, session_scan
from webui.sets import save_set_form
from webui.widgets import chart, header


def overlap_charts(ms: dict[str, NeuronSet], layers: int, fn: PageFunction) -> None:
    if len(ms) <= 3:
        chart(venn_figure(ms, title=f"Shared {fn.neurons} across languages ({fn.title})"), "overlap_venn",
              f"each circle is one language's {fn.neurons} (MS, its size beside the name); each number counts the "
              "neurons in exactly that region; English's overlap with another language holds that language's shared "
              "(SS) neurons.")
    else:
        chart(upset_figure(ms, title=f"Shared {fn.neurons} across languages ({fn.title}, UpSet)"), "overlap_upset",
              "each bar counts the neurons in exactly the languages marked by the dots below it, largest first; "
              "the bars on the left are each language's MS size.")
    left, right = st.columns(2)
    with left:
        chart(jaccard_figure(ms, layers), "overlap_jaccard_layers",
              "one row per layer, one column per language pair: |A ∩ B| / |A ∪ B|, 1 (yellow) = the same "
              "neurons, 0 (purple) = none in common; blank where neither language has any.")
    with right:
        chart(jaccard_matrix_figure(ms), "overlap_jaccard_matrix",
              "the same Jaccard similarity for the whole MS sets, every pair of languages (1 on the diagonal).")


def ss_neurons(safety: SafetyNeurons, layers: int, fn: PageFunction) -> None:
    st.subheader(f"Shared {fn.neurons} (SS)")
    if not safety.ss:
        st.info(f"SS sets need {safety.high_resource} and another language in the scan.")
        return
    st.dataframe({"set": [f"SS-{lang}" for lang in safety.ss], "neurons": [len(s) for s in safety.ss.values()]},
                 hide_index=True)
    chart(counts_by_language_figure(safety.ss, layers, title=f"Shared {fn.neurons} per layer ({fn.title})"),
          "overlap_ss", f"bars count SS-LANG = MS({safety.high_resource}) ∩ MS(LANG) in each layer"
          + ("; the paper finds fewer SS neurons go with weaker safety in that language." if fn.name == "refusal"
             else "."))


fn = current_or_stop()
header("Overlap", f"Which {fn.neurons} ({fn.title}) the languages share: Venn/UpSet regions, Jaccard similarity, "
                  "and the shared (SS) neurons per layer.")
current = current_safety()
if current is None:
    st.info(f"No scan yet of {md(fn.title)}: run one on the **Safety neurons** page first.")
    st.page_link("webui/pages/safety_neurons.py", label="Go to Safety neurons", icon="🔥")
    st.stop()
scan, safety = current
if session_scan() is None:
    st.caption(f"From the scan shipped for **{scan.model}** (top {safety.top_p:.1%} per layer); a scan you run on "
               "*Safety neurons* replaces it.")
layers = scan.n_layers
names = list(safety.ms)
langs = st.multiselect("Languages (MS sets)", names, default=names[:3], key="overlap_langs", persist_state="session")
if len(langs) < 2:
    st.info("Choose at least two languages to compare.")
    st.stop()
overlap_charts({lang: safety.ms[lang] for lang in langs}, layers, fn)
ss_neurons(safety, layers, fn)
st.subheader("A region's neurons")
sets = named_regions(safety, langs)
name = st.selectbox("Region", list(sets), format_func=lambda n: sets[n][0], key="overlap_region")
region = sorted(sets[name][1])
st.caption("Select a row to open that neuron's card below.")
picked = st.dataframe({"layer": [n.layer for n in region], "site": [n.site for n in region],
                       "index": [n.index for n in region]}, key=f"overlap_neurons:{name}", on_select="rerun",
                      selection_mode="single-row", hide_index=True, height=210)
rows = picked.selection.rows
open_on_new_pick(f"overlap_neurons:{name}", state.scan_role(), region[rows[0]] if rows else None)
save_set_form(sets[name][1], name, "overlap_save")
neuron_card(tuple(dict.fromkeys(["en", *langs])))
