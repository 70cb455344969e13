"""Safety neurons: scan a model on harmful vs harmless prompts per language and pick its safety neurons."""
from pathlib import Path

import streamlit as st

import ui_common as ui
from neuronlab import NeuronSet
from neuronlab.plots import score_heatmap
from neuronlab.presets import Preset, scan_work
from neuronlab.prompts import BUNDLED_LANGUAGES, FORMATS, PromptFileError, PromptSet, bundled_prompts, parse_prompts
from neuronlab.scan import DEFAULT_TOP_P, METHODS, SITE_GROUPS, ScanResult, SafetyNeurons, run_scan, select_sets

KEEP = ui.KEEP


def prompt_source() -> PromptSet:
    """Bundled prompts, or a validated upload (stops the page with the file's problem otherwise)."""
    source = st.radio("Prompt set", ["bundled", "upload"], key="scan_source", horizontal=True, **KEEP)
    if source == "bundled":
        return bundled_prompts()
    upload = st.file_uploader("Prompt file (JSON Lines or CSV: id, lang, label, text)", key="scan_upload",
                              type=[suffix.lstrip(".") for suffix in FORMATS])
    if upload is None:
        st.info("Upload a prompt file to scan with it.")
        st.stop()
    try:
        return parse_prompts(upload.getvalue(), FORMATS[Path(upload.name).suffix.lower()], source=upload.name)
    except PromptFileError as e:
        st.error(str(e))
        st.stop()


def scan_fill(preset: Preset) -> dict:
    """The scan form's widget values of a preset."""
    size = preset.scan
    return {"scan_langs_bundled": list(size.langs), "scan_per_label": size.per_label, "scan_method": size.method}


def scan_form(role: str) -> None:
    shared = ui.model_or_stop(role)
    prompts = prompt_source()
    source = st.session_state["scan_source"]
    ui.preset_picker("scan_preset", scan_fill)
    left, middle, right = st.columns(3)
    langs = left.multiselect("Languages", prompts.languages if source == "upload" else BUNDLED_LANGUAGES,
                             default=prompts.languages if source == "upload" else None, key=f"scan_langs_{source}",
                             **KEEP)
    method = middle.selectbox("Method", METHODS, key="scan_method", **KEEP,
                              help="activation: mean |activation| (one pass); attribution: gradient estimate of "
                                   "the ablation effect; ablation: zero each neuron in turn (slow, pick layers)")
    site = right.selectbox("Site", list(SITE_GROUPS), key="scan_site", **KEEP)
    layers = []
    if method == "ablation":
        layers = st.multiselect("Layers to ablate (one forward pass per neuron and prompt)",
                                range(shared.arch.n_layers), key="scan_layers", **KEEP)
    per_label = left.number_input("Prompts per label", min_value=1, placeholder="all", key="scan_per_label", **KEEP)
    if ui.session_patch(role):
        st.caption("Scans read the model as loaded: this session's weight patch is left out.")
    ready = bool(langs) and (method != "ablation" or bool(layers))
    chosen = prompts.head(per_label)
    if ready:
        ablated = sum(shared.arch.sites[s].size for s in SITE_GROUPS[site]) * len(layers)
        ui.time_estimate(role, scan_work(len(chosen.filter(lang=langs, split="scan")), method, neurons=ablated))
    if st.button("Run scan", type="primary", key="scan_run", disabled=not ready):
        st.session_state.pop("safety", None)  # the sets of the scan being replaced
        try:
            with ui.job("scan", len(langs), "languages", "Scanning…") as (report, keep), \
                    ui.use(role, with_patch=False) as lm:
                run_scan(lm, chosen, langs, method, site, layers=layers or None, progress=report,
                         on_language=lambda result: keep(result, len(result.languages)))
        except ValueError as e:
            st.error(str(e))
    ui.job_note("scan")


def heatmap(result: ScanResult) -> str:
    """The contrast heatmap of a chosen language and site; returns the language."""
    st.subheader("Per-layer scores")
    left, middle, right = st.columns([2, 2, 1])
    lang = left.selectbox("Language", result.languages, key="scan_view_lang", **KEEP)
    site = middle.selectbox("Site", result.sites, key="scan_view_site", **KEEP)
    per_layer = right.toggle("Scale each layer", value=True, key="scan_view_per_layer",
                             help="Divide each layer by its largest score, so loud late layers do not hide the rest")
    fig = score_heatmap(result.contrast[lang][site], title=f"{lang}: harmful − harmless, {site}",
                        site_label=f"{site} neuron", per_layer=per_layer)
    ui.chart(fig, "scan_heatmap", "Each cell is a neuron (binned, largest magnitude kept): red scores higher on "
                                  f"harmful than on harmless prompts ({result.method}), blue lower.")
    st.download_button("Heatmap (HTML)", fig.to_html, f"heatmap-{lang}-{site}.html", "text/html", key="dl_heatmap",
                       on_click="ignore")
    return lang


def top_neurons(result: ScanResult, safety: SafetyNeurons, lang: str) -> None:
    st.subheader("Top neurons")
    table = result.table(lang)
    rows = st.number_input("Rows", 10, 1000, 50, 10, key="scan_rows", **KEEP)
    top = table.nlargest(rows, "contrast").reset_index(drop=True)
    top.insert(3, f"MS {lang}", [n in safety.ms[lang] for n in zip(top["layer"], top["site"], top["index"])])
    st.caption(f"The {rows} neurons of `{lang}` with the largest contrast; select rows to save them as a neuron set.")
    picked = st.dataframe(top, key="scan_table", on_select="rerun", selection_mode="multi-row", hide_index=True)
    rows_picked = top.iloc[picked.selection.rows]
    ui.save_set_form(NeuronSet(zip(rows_picked["layer"], rows_picked["site"], rows_picked["index"])),
                     f"picked-{lang}", "scan_pick")
    st.download_button("Scores table (CSV)", lambda: table.to_csv(index=False), f"scores-{lang}.csv", "text/csv",
                       key="dl_scores", on_click="ignore")


def share_stats(safety: SafetyNeurons) -> None:
    stats = safety.stats()
    st.subheader("Safety-neuron sets")
    st.caption(f"Top {safety.top_p:.1%} per layer, of {stats['total_neurons']:,} neurons.")
    st.dataframe({"set": list(stats["counts"]), "neurons": list(stats["counts"].values()),
                  "share": [f"{s:.3%}" for s in stats["share"].values()]}, hide_index=True)
    st.caption("LANG = monolingual safety neurons MS (top on harmful, not on harmless prompts); ss-LANG = MS(en) ∩ "
               "MS(LANG); ss = their union; shared = in every scanned language's MS.")


def results(result: ScanResult) -> None:
    top_p = st.slider("Top p (% of neurons per layer)", 0.1, 20.0, DEFAULT_TOP_P * 100, 0.1, key="scan_top_p", **KEEP)
    safety = st.session_state["safety"] = select_sets(result, top_p / 100)
    st.caption(f"Scan of **{result.model}** · {result.method} · sites {', '.join(result.sites)} · prompts per "
               "language: " + ", ".join(f"{lang} {n['harmful']}+{n['harmless']}" for lang, n in result.n_prompts.items()))
    lang = heatmap(result)
    share_stats(safety)
    st.download_button("neurons.json", lambda: ui.scan_json(result, safety), "neurons.json", "application/json",
                       key="dl_neurons", on_click="ignore")
    top_neurons(result, safety, lang)


ui.header("Safety neurons", "Score every neuron on harmful and harmless prompts per language; the top p% on "
                            "harmful but not on harmless prompts are that language's safety neurons.")
role = st.radio("Model to scan", ui.ROLES, key="scan_model", horizontal=True, **KEEP)
scan_form(role)
if "scan" in st.session_state:
    results(st.session_state["scan"])
