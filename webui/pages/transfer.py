"""Transfer: copy a few neurons' weights from the donor into the target (CNT), measure, apply, download."""
import streamlit as st

from neuronlab import NeuronSetError
from neuronlab.analysis.scan import SITE_GROUPS
from neuronlab.neurons.patches import Patch, PatchError
from neuronlab.neurons.sets import Neuron
from neuronlab.plots import counts_by_language_figure, transfer_curve_figure
from neuronlab.presets import Preset, ranking_work
from neuronlab.progress import Work, shares, span
from neuronlab.transfer.curve import curve_frame
from neuronlab.transfer.plan import make_transfer, scan_data
from neuronlab.transfer.ranking import RANKINGS
from webui import state
from webui.evaluations import eval_fill
from webui.functions import PageFunction, current_or_stop
from webui.guard import md
from webui.jobs import job, job_note, preset_picker, time_estimate
from webui.models import compatibility, model_or_stop, together
from webui.neuron_card import neuron_card, open_on_new_pick
from webui.sets import available_sets
from webui.shipped import shipped_experiments, show_shipped_effects
from webui.transfer_curve import curve
from webui.transfer_measure import TOWARD_50, measure_settings, measure_transfer, measure_work, ready, show_measure
from webui.widgets import KEEP, chart, example_download, header

EVERY = "every neuron of a site"
DIRECTIONS = {"add": "addition: the donor's neurons into the target",
              "delete": "deletion: the target's neurons into the donor"}
WEIGHT_DIFF = "weight-diff: how much each neuron's weights differ between donor and target"
RANDOM = "random: a seeded control"
RANK_HELP = {
    "refusal": f"{WEIGHT_DIFF}; contrast: how differently it fires on harmful vs harmless prompts in the donor; causal: "
               "a first-order estimate of how much copying it moves the refusal score (harmful minus harmless; slow on "
               f"CPU, on the prompts per label set below); {RANDOM}",
    "bias": f"{WEIGHT_DIFF}; contrast: how differently it fires on the stereotype vs the anti-stereotype sentences of "
            "the English scan bias items in the donor; causal: a first-order estimate of how much copying it moves "
            "the stereotype preference toward none (slow on CPU, on the scan items set below); " + RANDOM,
    "your own": f"{WEIGHT_DIFF}; contrast: how differently it fires on your two labels' scan prompts in the donor; "
                f"{RANDOM}. No causal ranking for your own function yet."}
INTROS = {"refusal": "measure refusal and utility before and after.",
          "bias": "measure the stereotype and LM scores on held-out bias items before and after (bias removal).",
          "your own": "measure your function's metric (reply pattern or openings) before and after."}


def transfer_fill(preset: Preset) -> dict:
    """The page's widget values of a preset: the before/after evaluation and the curve."""
    size = preset.curve
    return {**eval_fill("tf_eval", preset.transfer), "tf_prompts": size.per_label, "tf_curve_seeds": size.seeds,
            "tf_cap": size.max_percent, "tf_start": size.start}


def pool(arch) -> tuple[tuple[str, ...], object]:
    """(sites, neuron set or None) the ranking picks from."""
    left, right = st.columns(2)
    sets = available_sets()
    name = left.selectbox("Pick among", [EVERY, *sets], key="tf_pool", **KEEP,
                          help="Rank every neuron of a site, or only those of a neuron set you saved or scanned.")
    if name == EVERY:
        return SITE_GROUPS[right.selectbox("Site", list(SITE_GROUPS), key="tf_site", **KEEP)], None
    try:
        within = sets[name].validate(arch)
    except NeuronSetError as e:
        st.error(f"{md(name)}: {md(e)}")
        st.stop()
    right.caption(f"{len(within):,} neurons in **{md(name)}**; a fraction of 100% moves all of them.")
    return tuple(within.sites), within


def amount() -> dict:
    """{"count": k} or {"fraction": f} of the pool to move."""
    left, right = st.columns([1, 2])
    kind = left.radio("How many", ["count", "fraction"], horizontal=True, key="tf_amount", **KEEP)
    if kind == "count":
        return {"count": int(right.number_input("Neurons to move", 1, 100_000, 100, key="tf_count", **KEEP))}
    percent = right.number_input("Percent of the pool", 0.001, 100.0, 1.0, 0.1, format="%.3f", key="tf_fraction", **KEEP)
    return {"fraction": percent / 100}


def rank_data(fn: PageFunction, ranking: str, per_label: int):
    """The scan data ``ranking`` reads for ``fn``: the bundled English scan split (contrast) or its first
    ``per_label`` per label, bias items spread over the domains (causal, which measures each many times); your own
    function's scan prompts (all of them when the file has no scan split); None: the ranking reads none."""
    if fn.name == "your own":
        scan = fn.prompts.filter(split="scan")
        return (scan if len(scan) else fn.prompts) if ranking == "contrast" else None
    scan, few = scan_data(fn.function.name, "en", per_label)
    return {"contrast": scan, "causal": few}.get(ranking)


def run_transfer(fn: PageFunction, direction: str, ranking: str, sites, within, how_many: dict, seed: int,
                 per_label: int, settings: dict | None) -> None:
    """Rank, copy and (with ``settings``) measure ``fn`` before and after, as one stoppable job."""
    donor, target = model_or_stop("donor"), model_or_stop("target")
    dest = "target" if direction == "add" else "donor"
    function = fn.function.name
    parts = [ranking_work(ranking, per_label, function)] + ([measure_work(fn, settings, dest)] if settings else [])
    ends = shares(parts)
    steps = 3 if settings else 1
    with job("transfer", steps, "steps (ranking, before, after)", "Ranking neurons…") as (report, keep):
        with together(donor, target) as (d, t):
            report(0.0, f"Ranking neurons by {ranking}")
            moved = make_transfer(d, t, ranking, direction, within, sites, seed=seed,
                                  prompts=rank_data(fn, ranking, per_label), check=False,
                                  progress=span(report, 0.0, ends[0]), function=function, **how_many)
        patch = moved.patch
        ranked = sorted(((n, float(moved.scores[n.site][n.layer, n.index])) for n in moved.neurons),
                        key=lambda item: -item[1])
        made = {"patch": patch, "dest": dest, "layers": d.arch.n_layers, "results": None, "ranked": ranked,
                "function": fn.title}
        keep(made, 1)
        if settings:
            measure_transfer(fn, dest, patch, settings, span(report, ends[0], 1.0),
                             lambda results: keep({**made, "results": results}, 1 + len(results)))


def moved_neurons(ranked: list[tuple[Neuron, float]], dest: str) -> None:
    """The moved neurons by ranking score; a selected row opens in the neuron card (on the model they went to)."""
    st.markdown("**The moved neurons, highest ranked first** (select a row to open its neuron card)")
    picked = st.dataframe({"layer": [n.layer for n, _ in ranked], "site": [n.site for n, _ in ranked],
                           "index": [n.index for n, _ in ranked], "score": [v for _, v in ranked]},
                          key="tf_moved", on_select="rerun", selection_mode="single-row", hide_index=True, height=210)
    rows = picked.selection.rows
    open_on_new_pick("tf_moved", dest, ranked[rows[0]][0] if rows else None)
    neuron_card()


def outcome(fn: PageFunction, patch: Patch, dest: str, layers: int, results: dict | None,
            ranked: list[tuple[Neuron, float]] | None = None) -> None:
    st.subheader("Result")
    left, middle, right = st.columns(3)
    left.metric("neurons moved", f"{len(patch.neurons):,}")
    middle.metric("weights written", f"{patch.meta['values']:,}")
    right.metric("share of parameters", f"{patch.meta['share_of_parameters']:.4%}")
    chart(counts_by_language_figure({"moved": patch.neurons}, layers, title="Neurons moved per layer",
                                    legend="set"),
          "tf_layers", "How many of the moved neurons sit in each layer (all sites together).")
    if results:
        st.markdown(f"**Before and after, on the {dest}** ({md(fn.title)})")
        show_measure(fn, results)
    apply_buttons(patch, dest, "tf")
    st.download_button("Patch (safetensors)", patch.to_bytes, "transfer-patch.safetensors",
                       "application/octet-stream", key="tf_download", on_click="ignore")
    if ranked:
        moved_neurons(ranked, dest)


def apply_buttons(patch: Patch, role: str, key: str) -> None:
    """Apply ``patch`` to this session's ``role`` model, or revert its weight patch."""
    current = state.session_patch(role)
    left, right = st.columns(2)
    if left.button(f"Apply to the {role} in this session", key=f"{key}_apply", type="primary",
                   disabled=current is patch):
        try:
            state.set_session_patch(role, model_or_stop(role).check(patch))
        except PatchError as e:  # e.g. another model was loaded since the transfer
            st.error(md(e))
            return
        st.rerun()
    if right.button(f"Revert the {role}", key=f"{key}_revert", disabled=current is None):
        state.set_session_patch(role, None)
        st.rerun()


def session_status() -> None:
    for role in state.ROLES:
        if (patch := state.session_patch(role)) is not None:
            st.success(f"This session's {role} carries a weight patch of {len(patch.neurons):,} neurons "
                       f"({md(patch.meta.get('source', 'uploaded'))}); other sessions see the model unchanged.")


def upload() -> None:
    with st.expander("Upload a patch (safetensors)"):
        role = st.radio("Patch the", state.ROLES, horizontal=True, key="tf_upload_role")
        file = st.file_uploader("NeuronLab patch", type=["safetensors"], key="tf_upload")
        example_download("patch")
        if file is None:
            return
        force = st.checkbox("Apply anyway", key="tf_up_force",
                            help="Accept a patch made for another model, or one that names none. Its neurons, sites "
                                 "and shapes are still checked; whether its weights make sense is up to you.")
        try:
            patch = model_or_stop(role).check(Patch.from_bytes(file.getvalue(), file.name), force=force)
        except PatchError as e:  # names the file already
            st.error(md(e))
            return
        cached = st.session_state.get("tf_uploaded")
        if cached is None or cached[0] != (file.file_id, role, force):  # the same upload keeps its identity
            st.session_state["tf_uploaded"] = cached = ((file.file_id, role, force), patch)
        made_for = "applied anyway, whatever model it was made for" if force else f"made for this {role}"
        st.caption(f"{md(file.name)}: {len(cached[1].neurons):,} neurons, {made_for}.")
        apply_buttons(cached[1], role, "tf_up")


def shipped_transfer() -> None:
    """The transfer and curve shipped for the loaded built-in pair, shown before anything is run."""
    docs = {**shipped_experiments("effects"), **shipped_experiments("curve")}
    docs = {name: doc for name, doc in docs.items() if doc["settings"]["action"] in ("transfer", "curve")}
    if not docs:
        return
    with st.expander("Measured for this built-in pair (shipped)", expanded="transfer" not in st.session_state):
        for name, doc in docs.items():
            st.markdown(f"**{name}**")
            if doc["kind"] == "curve":
                curve_doc = doc["result"]
                frame = curve_frame(curve_doc)
                chart(transfer_curve_figure(frame, curve_doc["goal"], curve_doc["found_k"]), f"shipped_{name}",
                      "Solid: the ranked neurons; dashed: random neurons; dotted: the target before; right axis: "
                      "perplexity. The star marks the smallest set that met the goal (fast refusal score on "
                      f"{doc['settings']['prompts_per_label']} scan prompts per label). Made by `{doc['made_by']}`.")
            else:
                show_shipped_effects(doc, "patched", f"shipped_{name}")


fn = current_or_stop()
header("Transfer", f"Function {fn.title}. Copy a small set of neurons' weights from one model into the other (CNT): "
                   f"add a function the target lacks, or delete one, and {INTROS[fn.name]}")
if fn.name == "bias":
    st.caption(TOWARD_50)
donor, target = model_or_stop("donor"), model_or_stop("target")
keys = state.loaded_keys()
compat = compatibility(keys["donor"], keys["target"])
if not compat.compatible:
    st.warning("Donor and target are not compatible for a neuron copy:\n" + "\n".join(f"- {md(p)}" for p in compat.problems))
    st.stop()
session_status()
shipped_transfer()
preset_picker("tf_preset", transfer_fill)
direction = st.radio("Direction", list(DIRECTIONS), format_func=DIRECTIONS.get, key="tf_direction", **KEEP)
left, middle, right = st.columns(3)
rankings = [r for r in RANKINGS if not (fn.name == "your own" and r == "causal")]
ranking = left.selectbox("Ranking", rankings, key="tf_ranking", help=RANK_HELP[fn.name], **KEEP)
per_label = middle.number_input("Scan bias items" if fn.name == "bias" else "Scan prompts per label", 1, 60,
                                key="tf_prompts", **KEEP, disabled=fn.name == "your own",
                                help="English scan prompts (bias: items) for the causal ranking and the transfer curve.")
seed = right.number_input("Seed (random ranking)", 0, 2**31 - 1, 0, key="tf_seed", disabled=ranking != "random", **KEEP)
sites, within = pool(target.arch)
candidates = len(within) if within is not None else target.arch.n_layers * sum(target.arch.sites[s].size for s in sites)
how_many = amount()
settings = measure_settings(fn)
dest_role = "target" if direction == "add" else "donor"
measured = measure_work(fn, settings, dest_role) if settings and ready(fn, settings) else Work()
time_estimate("target", ranking_work(ranking, per_label, fn.function.name) + measured)
if st.button("Run transfer", type="primary", key="tf_run", disabled=bool(settings) and not ready(fn, settings)):
    run_transfer(fn, direction, ranking, sites, within, how_many, seed, per_label, settings)
job_note("transfer")
if (made := st.session_state.get("transfer")) is not None:
    made = dict(made)
    if made.pop("function") == fn.title:
        outcome(fn, **made)
    else:
        st.info("The last transfer was made for another function; run it again to measure this one.")
curve(fn, direction, ranking, sites, within, seed, per_label, candidates, rank_data(fn, ranking, per_label))
upload()
