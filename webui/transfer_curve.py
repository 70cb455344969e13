"""The Transfer page's curve: the minimal-subset search (CNT) for the picked function, the ranked neurons moved in
growing steps beside random ones, until refusal reaches a goal (``minimal_subset``) or the stereotype score comes
within a band around 50% (``bias_subset``). Your own function has none: each point would need generated replies."""
from __future__ import annotations

import streamlit as st

from neuronlab.evaluation.metrics import benign_texts
from neuronlab.plots import transfer_curve_figure
from neuronlab.presets import PRESETS, CurveSize, curve_work, ranking_work
from neuronlab.progress import shares, span
from neuronlab.transfer.curve import bias_subset, minimal_subset, search_steps
from neuronlab.transfer.plan import scan_data
from neuronlab.transfer.ranking import rank_scores
from webui.functions import PageFunction
from webui.jobs import job, job_note, stopped, time_estimate
from webui.models import model_or_stop, together
from webui.widgets import KEEP, chart

MAX_LM_DROP = 0.02  # bias: the LM score may fall this much below the destination's own
CAPTIONS = {
    "refusal": "Grow the moved set along the ranking (from the first step, doubling) until English refusal reaches "
               "the goal within the budget (perplexity +1%, false refusals 10%), from the fast refusal score on the "
               "scan prompts, with random neurons of the same per-layer counts beside it. The quick preset measures "
               "perplexity on 3 paragraphs, the full one on all 10.",
    "bias": "Grow the moved set along the ranking (from the first step, doubling) until the destination's stereotype "
            "score on English scan bias items comes within the goal's band around 50% (no preference) within the "
            f"budget (LM score at most {MAX_LM_DROP:.0%} lower, perplexity +1%), with random neurons of the same "
            "per-layer counts beside it."}
EXPLAIN = {"refusal": "Solid: the ranked neurons; dashed: random neurons (± standard error); dotted: the model "
                      "before; right axis: perplexity. The star marks the smallest set that met the goal.",
           "bias": "Solid: the ranked neurons; dashed: random neurons (± standard error); dotted: the model before; "
                   "the grey band: the goal around 50% (no preference); right axis: perplexity. The star marks the "
                   "smallest set that met the goal."}


def goal_slider(fn: PageFunction, where) -> float:
    """Refusal: the refusal rate to reach; bias: 0.5 + the band's half-width (0.55: 45% to 55%)."""
    if fn.name == "bias":
        points = where.slider("Goal: within ± points of 50%", 1, 25, 5, key="tf_bias_goal", **KEEP,
                              help="The stereotype score to reach: this close to 50%, no preference.")
        return 0.5 + points / 100
    return where.slider("Refusal goal", 0.1, 1.0, 0.7, 0.05, key="tf_goal", **KEEP)


def search(fn: PageFunction, direction: str, ranking: str, sites, seed: int, prompts, within, size: CurveSize,
           goal: float, candidates: int) -> None:
    """Rank (on ``prompts``, the ranking's scan data), then search, as one stoppable job."""
    function = fn.function.name
    few = scan_data(function, "en", size.per_label)[1]
    steps = len(search_steps(size.start, max(1, round(size.max_percent / 100 * candidates))))
    ends = shares([ranking_work(ranking, size.per_label, function), curve_work(size, candidates, function)])
    donor, target = model_or_stop("donor"), model_or_stop("target")
    with job("tf_curve", steps, "steps", "Ranking neurons…") as (report, keep), together(donor, target) as (d, t):
        report(0.0, f"Ranking neurons by {ranking}")
        scores = rank_scores(ranking, d, t, sites, seed, prompts, delete=direction == "delete",
                             progress=span(report, 0.0, ends[0]), function=function)
        source, dest = (d, t) if direction == "add" else (t, d)
        common = dict(direction=direction, goal=goal, max_fraction=size.max_percent / 100, start=size.start,
                      seeds=size.seeds, within=within, progress=span(report, ends[0], 1.0),
                      on_step=lambda partial: keep(partial, len(partial.points)))
        benign = benign_texts("en")[:size.benign]
        if function == "bias":
            keep(bias_subset(source, dest, scores, list(few), benign, max_lm_drop=MAX_LM_DROP, **common), steps)
        else:
            keep(minimal_subset(source, dest, scores, few.filter(label="harmful").texts,
                                few.filter(label="harmless").texts, benign, **common), steps)


def curve(fn: PageFunction, direction: str, ranking: str, sites, within, seed: int, per_label: int, candidates: int,
          prompts) -> None:
    """The minimal-subset search of ``fn`` and its chart; ``prompts``: the ranking's scan data."""
    st.subheader("Transfer curve")
    if fn.name not in CAPTIONS:
        st.info("No transfer curve for your own function: each point would need generated replies, since a reply "
                "pattern has no one-pass score to track.")
        return
    st.caption(CAPTIONS[fn.name])
    left, middle, right, last = st.columns(4)
    goal = goal_slider(fn, left)
    cap = middle.number_input("Largest set (% of the pool)", 0.01, 10.0, step=0.1, key="tf_cap", **KEEP)
    start = right.number_input("First step (neurons)", 1, 10_000, key="tf_start", **KEEP)
    seeds = last.number_input("Random sets per step", 1, 5, key="tf_curve_seeds", **KEEP)
    size = CurveSize(per_label, seeds, cap, start, PRESETS[st.session_state["tf_preset"]].curve.benign)
    function = fn.function.name
    time_estimate("target", curve_work(size, candidates, function) + ranking_work(ranking, per_label, function))
    if st.button("Search the minimal set", key="tf_search"):
        search(fn, direction, ranking, sites, seed, prompts, within, size, goal, candidates)
    job_note("tf_curve")
    result = st.session_state.get("tf_curve")
    if result is None or result.meta.get("function", "refusal") != function:
        return
    frame = result.to_frame()
    fig = transfer_curve_figure(frame, result.goal, result.found.k if result.found else None)
    chart(fig, "tf_curve_chart", EXPLAIN[function])
    if result.found:
        st.success(f"{result.found.k:,} neurons ({result.found.share:.4%} of the parameters) meet the goal; run "
                   f"the transfer above with a count of {result.found.k} to keep them as a patch.")
    elif not stopped("tf_curve"):
        st.warning("No set up to the cap met the goal within the budget.")
    left, right = st.columns(2)
    left.download_button("Curve (CSV)", lambda: frame.to_csv(index=False), "transfer-curve.csv", "text/csv",
                         key="tf_curve_csv", on_click="ignore")
    right.download_button("Curve (HTML)", fig.to_html, "transfer-curve.html", "text/html", key="tf_curve_html",
                          on_click="ignore")
