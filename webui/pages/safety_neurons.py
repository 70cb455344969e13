"""Safety neurons: scan a model on the picked function's two labels per language (harmful vs harmless for refusal)
and pick its neurons (safety neurons for refusal)."""
from pathlib import Path

import streamlit as st

from neuronlab import NeuronSet
from neuronlab.analysis.scan import (
    DEFAULT_TOP_P,
    METHODS,
    SITE_GROUPS,
    SafetyNeurons,
    ScanResult,
    run_scan,
    scan_document,
)
from neuronlab.data.prompts import (
    BUNDLED_LANGUAGES,
    PromptFileError,
    PromptSet,
    bundled_prompts,
    parse_prompts,
)
from neuronlab.data.tables import FORMATS
from neuronlab.neurons.sets import Neuron
from neuronlab.plots import score_heatmap
from neuronlab.presets import Preset, scan_work
from webui import state
from webui.functions import PageFunction, current_or_stop
from webui.guard import md
from webui.jobs import job, job_note, preset_picker, time_estimate
from webui.layer_view import focus, layer_view
from webui.models import model_or_stop, use
from webui.neuron_card import clicked, neuron_card, newest_row, open_on_new_pick
from webui.scans import session_scan, shipped_scan
from webui.sets import save_set_form
from webui.widgets import KEEP, chart, example_download, header


def prompt_source(fn: PageFunction) -> tuple[PromptSet, str]:
    """(prompts, source): the function's own prompts (bias, yours), else refusal's bundled prompts or a validated
    upload (stops the page with the file's problem otherwise); source is "bundled", "upload" or the function's name."""
    if fn.prompts is not None:
        st.caption(f"Prompts: {md(fn.source)} ({len(fn.prompts):,}; labels {' and '.join(fn.labels)}).")
        return fn.prompts, fn.name.replace(" ", "_")
    source = st.radio("Prompt set", ["bundled", "upload"], key="scan_source", horizontal=True, **KEEP)
    if source == "bundled":
        return bundled_prompts(), source
    upload = st.file_uploader("Prompt file (JSON Lines or CSV: id, lang, label, text)", key="scan_upload",
                              type=[suffix.lstrip(".") for suffix in FORMATS])
    example_download("prompts")
    if upload is None:
        st.info("Upload a prompt file to scan with it.")
        st.stop()
    try:
        prompts = parse_prompts(upload.getvalue(), FORMATS[Path(upload.name).suffix.lower()], source=upload.name)
    except PromptFileError as e:
        st.error(md(e))
        st.stop()
    state.set_user_prompts(upload.name, prompts)  # the neuron card can read its activations on them too
    return prompts, source


def scan_fill(preset: Preset) -> dict:
    """The scan form's widget values of a preset."""
    size = preset.scan
    return {"scan_langs_bundled": list(size.langs), "scan_per_label": size.per_label, "scan_method": size.method}


def scan_form(role: str, fn: PageFunction) -> None:
    shared = model_or_stop(role)
    prompts, source = prompt_source(fn)
    preset_picker("scan_preset", scan_fill)
    left, middle, right = st.columns(3)
    bundled = source == "bundled"
    default = None if bundled else ["en"] if source == "bias" else prompts.languages
    langs = left.multiselect("Languages", BUNDLED_LANGUAGES if bundled else prompts.languages, default=default,
                             key=f"scan_langs_{source}", **KEEP)
    method = middle.selectbox("Method", METHODS, key="scan_method", **KEEP,
                              help="activation: mean |activation| (one pass); attribution: gradient estimate of "
                                   "the ablation effect; ablation: zero each neuron in turn (slow, pick layers)")
    site = right.selectbox("Site", list(SITE_GROUPS), key="scan_site", **KEEP)
    layers = []
    if method == "ablation":
        layers = st.multiselect("Layers to ablate (one forward pass per neuron and prompt)",
                                range(shared.arch.n_layers), key="scan_layers", **KEEP)
    per_label = left.number_input("Prompts per label", min_value=1, placeholder="all", key="scan_per_label", **KEEP)
    if state.session_patch(role):
        st.caption("Scans read the model as loaded: this session's weight patch is left out.")
    ready = bool(langs) and (method != "ablation" or bool(layers))
    chosen = prompts.head(per_label)
    if ready:
        ablated = sum(shared.arch.sites[s].size for s in SITE_GROUPS[site]) * len(layers)
        time_estimate(role, scan_work(len(chosen.filter(lang=langs, split="scan")), method, neurons=ablated))
    if st.button("Run scan", type="primary", key="scan_run", disabled=not ready):
        try:
            with job(state.SCAN, len(langs), "languages", "Scanning…") as (report, keep), \
                    use(role, with_patch=False) as lm:
                run_scan(lm, chosen, langs, method, site, layers=layers or None, progress=report,
                         on_language=lambda result: keep(result, len(result.languages)), labels=fn.labels)
        except ValueError as e:
            st.error(md(e))
    job_note(state.SCAN)


def layers_key(n_layers: int) -> str:
    """The heatmap's layer-range slider (the layer view sets it)."""
    return f"scan_view_layers_{n_layers}"


def heatmap(result: ScanResult, safety: SafetyNeurons, fn: PageFunction) -> str:
    """The contrast heatmap of a chosen language and site, zoomable to single neurons, with the language's
    MS neurons outlined; returns the language."""
    st.subheader("Per-layer scores")
    left, middle, right = st.columns([2, 2, 1])
    langs = result.languages
    lang = left.selectbox("Language", langs, index=langs.index("en") if "en" in langs else 0, key="scan_view_lang",
                          **KEEP)
    site = middle.selectbox("Site", result.sites, key="scan_view_site", **KEEP)
    per_layer = right.toggle("Scale each layer", value=True, key="scan_view_per_layer",
                             help="Divide each layer by its largest |score|, so loud late layers do not hide the rest")
    scores = result.contrast[lang][site]  # [layers, neurons]
    n_layers, width = scores.shape
    left, middle, right = st.columns([3, 2, 1])
    neurons = left.slider("Neuron index range", 0, width - 1, (0, width - 1), key=f"scan_view_neurons_{site}_{width}",
                          help="Narrow it to 256 neurons or fewer to see one cell per neuron", **KEEP)
    layers = middle.slider("Layer range", 0, n_layers - 1, (0, n_layers - 1), key=layers_key(n_layers), **KEEP)
    top = f"{safety.top_p * 100:g}%"
    outline = right.toggle(f"Outline MS {lang}", value=True, key="scan_view_outline", **KEEP)
    ms = NeuronSet(n for n in safety.ms[lang] if n.site == site) if outline else None
    first, second = fn.words
    fig = score_heatmap(scores, title=f"{lang}: {fn.contrast}, {site} ({fn.name})", site_label=f"{site} neuron",
                        per_layer=per_layer, neurons=neurons, layers=layers, outline=ms,
                        outline_label=f"MS {lang}, top {top}")
    per_cell = fig.layout.meta["neurons_per_cell"]
    cell = "one neuron" if per_cell == 1 else f"the strongest of {per_cell} neighbouring neurons"
    event = chart(fig, "scan_heatmap",
                  f"One row per layer; each cell is {cell}. Red: more {result.method} on {first} than on "
                  f"{second} {lang} prompts, blue: less{', relative to the layer' if per_layer else ''}. Black "
                  f"squares: MS {lang}, the top {top} by importance on {first} prompts that are not top on {second} "
                  "ones — not always the reddest cells. Click a cell to open its neuron's card below.",
                  on_select="rerun", selection_mode="points")
    open_on_new_pick("scan_heatmap", state.scan_role(), clicked(event, site))
    st.download_button("Heatmap (HTML)", fig.to_html, f"heatmap-{lang}-{site}.html", "text/html", key="dl_heatmap",
                       on_click="ignore")
    return lang


def sorts(labels: tuple[str, str]) -> dict[str, str]:
    """The top-neuron table's orders (column or "ms": description) for a scan of ``labels``."""
    first, second = labels
    return {"contrast": f"largest contrast ({first} − {second})",
            f"importance {first}": f"largest importance on {first} prompts",
            "ms": f"MS neurons first, by rank on {first} prompts"}


def ranked_table(result: ScanResult, safety: SafetyNeurons, lang: str):
    """``result.table(lang)`` with each neuron's rank in its layer by importance on each of the scan's two labels
    (1 = most important) and whether it is in MS(lang)."""
    table = result.table(lang)
    columns = [f"importance {label}" for label in result.labels]
    ranks = table.groupby(["layer", "site"])[columns].rank(ascending=False, method="first").astype("Int64")
    for label, column in zip(result.labels, columns):
        table[f"rank {label}"] = ranks[column]
    keys = table.set_index(["layer", "site", "index"]).index
    table.insert(3, f"MS {lang}", keys.isin(list(safety.ms[lang])))
    return table


def top_neuron_table(result: ScanResult, safety: SafetyNeurons, lang: str) -> None:
    st.subheader("Top neurons")
    table = ranked_table(result, safety, lang)
    if (layer := focus()) is not None:
        table = table[table["layer"] == layer]
    left, right = st.columns(2)
    rows = left.number_input("Rows", 10, 1000, 50, 10, key="scan_rows", **KEEP)
    first, second = result.labels
    orders = sorts(result.labels)
    order = right.selectbox("Sort by", list(orders), format_func=orders.get, key=f"scan_sort:{first}", **KEEP)
    if order == "ms":
        top = table.sort_values([f"MS {lang}", f"rank {first}"], ascending=[False, True]).head(rows)
    else:
        top = table.nlargest(rows, order)
    p = f"{safety.top_p * 100:g}%"
    st.caption(f"MS {lang} is picked per layer by importance, not contrast: ranked in the top {p} of its layer on "
               f"{first} prompts but not on {second} ones. Select rows to save them as a neuron set; the row "
               "selected last opens in the neuron card below.")
    top = top.reset_index(drop=True)
    picked = st.dataframe(top, key="scan_table", on_select="rerun", selection_mode="multi-row", hide_index=True)
    if (row := newest_row("scan_table", picked.selection.rows)) is not None:
        state.inspect(state.scan_role(), Neuron(*top.loc[row, ["layer", "site", "index"]]))
    rows_picked = top.iloc[picked.selection.rows]
    save_set_form(NeuronSet(zip(rows_picked["layer"], rows_picked["site"], rows_picked["index"])),
                  f"picked-{lang}", "scan_pick")
    st.download_button("Scores table (CSV)", lambda: table.to_csv(index=False), f"scores-{lang}.csv", "text/csv",
                       key="dl_scores", on_click="ignore")


def share_stats(safety: SafetyNeurons, fn: PageFunction) -> None:
    stats = safety.stats()
    first, second = fn.words
    st.subheader(f"{fn.neurons.capitalize()}: the sets")
    st.caption(f"Top {safety.top_p:.1%} per layer, of {stats['total_neurons']:,} neurons.")
    st.dataframe({"set": list(stats["counts"]), "neurons": list(stats["counts"].values()),
                  "share": [f"{s:.3%}" for s in stats["share"].values()]}, hide_index=True)
    st.caption(f"LANG = monolingual {fn.neurons} MS (top on {first}, not on {second} prompts); ss-LANG = MS(en) ∩ "
               "MS(LANG); ss = their union; shared = in every scanned language's MS.")


def results(result: ScanResult, fn: PageFunction) -> None:
    st.slider("Top p (% of neurons per layer)", 0.1, 20.0, DEFAULT_TOP_P * 100, 0.1, key=state.SCAN_TOP_P, **KEEP)
    safety = state.safety_sets(result)
    st.caption(f"Scan of **{md(result.model)}** · {md(fn.title)} · {result.method} · sites {', '.join(result.sites)} "
               "· prompts per language: " + ", ".join(f"{lang} {'+'.join(str(n[label]) for label in result.labels)}"
                                                     for lang, n in result.n_prompts.items()))
    layer_view(result, safety, state.scan_role(), layers_key(result.n_layers), fn)
    lang = heatmap(result, safety, fn)
    share_stats(safety, fn)
    st.download_button("neurons.json", lambda: scan_document(result, safety), "neurons.json", "application/json",
                       key="dl_neurons", on_click="ignore")
    top_neuron_table(result, safety, lang)
    neuron_card(tuple(dict.fromkeys(["en", lang])))


fn = current_or_stop()
first, second = fn.words
if fn.name == "refusal":
    header("Safety neurons", "Score every neuron on harmful and harmless prompts per language; the top p% on "
                             "harmful but not on harmless prompts are that language's safety neurons.")
else:
    header(f"Function neurons — {fn.title}", f"Score every neuron on {first} and {second} prompts per language; the "
                                             f"top p% on {first} but not on {second} prompts are that language's "
                                             f"{fn.neurons}.")
role = st.radio("Model to scan", state.ROLES, key=state.SCAN_MODEL, horizontal=True, index=1, **KEEP,
                help="Safety neurons show best in a model that refuses (the donor of the demo pair)."
                if fn.name == "refusal" else f"The model whose {fn.neurons} to find.")
scan_form(role, fn)
if (scanned := session_scan()) is not None:
    results(scanned, fn)
elif (stored := shipped_scan(role)) is not None:
    st.info(f"Showing the scan shipped with NeuronLab for **{stored.model}** (activation, every bundled language, "
            "all scan prompts): press **Run scan** to compute one with the settings above.")
    results(stored, fn)
