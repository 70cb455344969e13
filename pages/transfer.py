"""Transfer: copy a few neurons' weights from the donor into the target (CNT), measure, apply, download."""
import streamlit as st

import ui_common as ui
from neuronlab import NeuronSetError
from neuronlab.patches import Patch, PatchError
from neuronlab.evaluation import benign_texts
from neuronlab.plots import counts_by_language_figure, transfer_curve_figure
from neuronlab.prompts import bundled_prompts
from neuronlab.scan import SITE_GROUPS
from neuronlab.search import minimal_subset
from neuronlab.shared import use_together
from neuronlab.transfer import RANKINGS, rank_scores, top_neurons, transfer_patch

KEEP = ui.KEEP
EVERY = "every neuron of a site"
DIRECTIONS = {"add": "addition: the donor's neurons into the target",
              "delete": "deletion: the target's neurons into the donor"}
RANK_HELP = ("weight-diff: how much each neuron's weights differ between donor and target; contrast: how differently "
             "it fires on harmful vs harmless prompts in the donor; causal: a first-order estimate of how much copying "
             "it moves the refusal score (harmful minus harmless; slow on CPU, uses 24 prompts per label); "
             "random: a seeded control")
CAUSAL_PROMPTS = 24  # per label: the causal pass and the curve search run every prompt many times


def pool(arch) -> tuple[tuple[str, ...], object]:
    """(sites, neuron set or None) the ranking picks from."""
    left, right = st.columns(2)
    sets = ui.available_sets()
    name = left.selectbox("Pick among", [EVERY, *sets], key="tf_pool", **KEEP,
                          help="Rank every neuron of a site, or only those of a neuron set you saved or scanned.")
    if name == EVERY:
        return SITE_GROUPS[right.selectbox("Site", list(SITE_GROUPS), key="tf_site", **KEEP)], None
    try:
        within = sets[name].validate(arch)
    except NeuronSetError as e:
        st.error(f"{name}: {e}")
        st.stop()
    right.caption(f"{len(within):,} neurons in **{name}**; a fraction of 100% moves all of them.")
    return tuple(within.sites), within


def amount() -> dict:
    """{"count": k} or {"fraction": f} of the pool to move."""
    left, right = st.columns([1, 2])
    kind = left.radio("How many", ["count", "fraction"], horizontal=True, key="tf_amount", **KEEP)
    if kind == "count":
        return {"count": int(right.number_input("Neurons to move", 1, 100_000, 100, key="tf_count", **KEEP))}
    percent = right.number_input("Percent of the pool", 0.001, 100.0, 1.0, 0.1, format="%.3f", key="tf_fraction", **KEEP)
    return {"fraction": percent / 100}


def ranked(d, t, direction: str, ranking: str, sites, seed: int, report) -> dict:
    """{site: [L, N]} scores of ``ranking`` for the transfer's direction."""
    few = bundled_prompts("en", split="scan").head(CAUSAL_PROMPTS) if ranking == "causal" else None
    return rank_scores(ranking, d, t, sites, seed, few, delete=direction == "delete",
                       progress=lambda f, m: report(0.8 * f, m))


def run_transfer(direction: str, ranking: str, sites, within, how_many: dict, seed: int, settings: dict | None) -> None:
    donor, target = ui.model_or_stop("donor"), ui.model_or_stop("target")
    dest = "target" if direction == "add" else "donor"
    with ui.progress("Ranking neurons…") as report, use_together(donor, target) as (d, t):
        scores = ranked(d, t, direction, ranking, sites, seed, report)
        neurons = top_neurons(scores, within=within, **how_many)
        report(0.8, f"copying {len(neurons):,} neurons")
        source, into = (d, t) if direction == "add" else (t, d)
        patch = transfer_patch(source, into, neurons, check=False, direction=direction, ranking=ranking)
    results = ui.evaluate({"before": (dest, None, []), "after": (dest, patch, [])}, settings) if settings else None
    st.session_state["transfer"] = {"patch": patch, "dest": dest, "layers": into.arch.n_layers, "results": results}


def outcome(patch: Patch, dest: str, layers: int, results: dict | None) -> None:
    st.subheader("Result")
    left, middle, right = st.columns(3)
    left.metric("neurons moved", f"{len(patch.neurons):,}")
    middle.metric("weights written", f"{patch.meta['values']:,}")
    right.metric("share of parameters", f"{patch.meta['share_of_parameters']:.4%}")
    ui.chart(counts_by_language_figure({"moved": patch.neurons}, layers, title="Neurons moved per layer",
                                       legend="set"),
             "tf_layers", "How many of the moved neurons sit in each layer (all sites together).")
    if results:
        st.markdown(f"**Before and after, on the {dest}**")
        ui.show_evaluation(results, "transfer")
    apply_buttons(patch, dest, "tf")
    st.download_button("Patch (safetensors)", patch.to_bytes, "transfer-patch.safetensors",
                       "application/octet-stream", key="tf_download", on_click="ignore")


def curve(direction: str, ranking: str, sites, within, seed: int) -> None:
    """The minimal-subset search: refusal and perplexity vs neurons moved, random sets beside, as a chart."""
    st.subheader("Transfer curve")
    st.caption("Grow the moved set along the ranking (8, 16, 32, … neurons) until English refusal reaches the goal "
               "within the budget (perplexity +1%, false refusals 10%), from the fast refusal score on "
               f"{CAUSAL_PROMPTS} scan prompts per label, with random neurons of the same per-layer counts beside it.")
    left, middle, right = st.columns(3)
    goal = left.slider("Refusal goal", 0.1, 1.0, 0.7, 0.05, key="tf_goal", **KEEP)
    cap = middle.number_input("Largest set (% of the pool)", 0.01, 10.0, 1.0, 0.1, key="tf_cap", **KEEP)
    seeds = right.number_input("Random sets per step", 1, 5, 1, key="tf_curve_seeds", **KEEP)
    if st.button("Search the minimal set", key="tf_search"):
        prompts = bundled_prompts("en", split="scan").head(CAUSAL_PROMPTS)
        donor, target = ui.model_or_stop("donor"), ui.model_or_stop("target")
        with ui.progress("Ranking neurons…") as report, use_together(donor, target) as (d, t):
            scores = ranked(d, t, direction, ranking, sites, seed, report)
            source, dest = (d, t) if direction == "add" else (t, d)
            st.session_state["tf_curve"] = minimal_subset(
                source, dest, scores, prompts.filter(label="harmful").texts, prompts.filter(label="harmless").texts,
                benign_texts("en"), direction=direction, goal=goal, max_fraction=cap / 100, seeds=seeds, within=within,
                progress=lambda f, m: report(0.8 + 0.2 * f, m))
    result = st.session_state.get("tf_curve")
    if result is None:
        return
    frame = result.to_frame()
    fig = transfer_curve_figure(frame, result.goal, result.found.k if result.found else None)
    ui.chart(fig, "tf_curve_chart", "Solid: the ranked neurons; dashed: random neurons (± standard error); dotted: "
                                    "the model before; right axis: perplexity. The star marks the smallest set "
                                    "that met the goal.")
    if result.found:
        st.success(f"{result.found.k:,} neurons ({result.found.share:.4%} of the parameters) meet the goal; run "
                   f"the transfer above with a count of {result.found.k} to keep them as a patch.")
    else:
        st.warning("No set up to the cap met the goal within the budget.")
    left, right = st.columns(2)
    left.download_button("Curve (CSV)", lambda: frame.to_csv(index=False), "transfer-curve.csv", "text/csv",
                         key="tf_curve_csv", on_click="ignore")
    right.download_button("Curve (HTML)", fig.to_html, "transfer-curve.html", "text/html", key="tf_curve_html",
                          on_click="ignore")


def apply_buttons(patch: Patch, role: str, key: str) -> None:
    """Apply ``patch`` to this session's ``role`` model, or revert its weight patch."""
    current = ui.session_patch(role)
    left, right = st.columns(2)
    if left.button(f"Apply to the {role} in this session", key=f"{key}_apply", type="primary",
                   disabled=current is patch):
        try:
            ui.set_session_patch(role, ui.model_or_stop(role).check(patch))
        except PatchError as e:  # e.g. another model was loaded since the transfer
            st.error(str(e))
            return
        st.rerun()
    if right.button(f"Revert the {role}", key=f"{key}_revert", disabled=current is None):
        ui.set_session_patch(role, None)
        st.rerun()


def session_status() -> None:
    for role in ui.ROLES:
        if (patch := ui.session_patch(role)) is not None:
            st.success(f"This session's {role} carries a weight patch of {len(patch.neurons):,} neurons "
                       f"({patch.meta.get('source', 'uploaded')}); other sessions see the model unchanged.")


def upload() -> None:
    with st.expander("Upload a patch (safetensors)"):
        role = st.radio("Patch the", ui.ROLES, horizontal=True, key="tf_upload_role")
        file = st.file_uploader("NeuronLab patch", type=["safetensors"], key="tf_upload")
        ui.example_download("patch")
        if file is None:
            return
        try:
            patch = ui.model_or_stop(role).check(Patch.from_bytes(file.getvalue(), file.name))
        except PatchError as e:  # names the file already
            st.error(str(e))
            return
        cached = st.session_state.get("tf_uploaded")
        if cached is None or cached[0] != (file.file_id, role):  # the same upload keeps its identity
            st.session_state["tf_uploaded"] = cached = ((file.file_id, role), patch)
        st.caption(f"{file.name}: {len(cached[1].neurons):,} neurons, made for this {role}.")
        apply_buttons(cached[1], role, "tf_up")


ui.header("Transfer", "Copy a small set of neurons' weights from one model into the other (CNT): add a function the "
                      "target lacks, or delete one, and measure refusal and utility before and after.")
donor, target = ui.model_or_stop("donor"), ui.model_or_stop("target")
keys = st.session_state["models"]
compat = ui.compatibility(keys["donor"], keys["target"])
if not compat.compatible:
    st.warning("Donor and target are not compatible for a neuron copy:\n" + "\n".join(f"- {p}" for p in compat.problems))
    st.stop()
session_status()
direction = st.radio("Direction", list(DIRECTIONS), format_func=DIRECTIONS.get, key="tf_direction", **KEEP)
left, right = st.columns(2)
ranking = left.selectbox("Ranking", RANKINGS, key="tf_ranking", help=RANK_HELP, **KEEP)
seed = right.number_input("Seed (random ranking)", 0, 2**31 - 1, 0, key="tf_seed", disabled=ranking != "random", **KEEP)
sites, within = pool(target.arch)
how_many = amount()
measure = st.toggle("Measure refusal and utility before and after", value=True, key="tf_measure", **KEEP)
settings = ui.eval_settings("tf_eval") if measure else None
if st.button("Run transfer", type="primary", key="tf_run", disabled=bool(settings) and not settings["langs"]):
    run_transfer(direction, ranking, sites, within, how_many, seed, settings)
if "transfer" in st.session_state:
    outcome(**st.session_state["transfer"])
curve(direction, ranking, sites, within, seed)
upload()
