"""The Evaluate page for the user's own function, per language and label, as loaded, intervened and patched: the share
of greedy replies that match its pattern (``evaluation.functions.match_rates``) or of prompts whose reply opens with
one of its openings (``opening_rates``, no generation); its settings, runs and chart serve the Transfer page's
before/after too."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import streamlit as st

from neuronlab.data.prompts import PromptSet
from neuronlab.evaluation.functions import match_rates, opening_rates
from neuronlab.experiments import heldout_prompts, variant_results
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.patches import Patch
from neuronlab.plots import hits_figure
from neuronlab.progress import Progress, Work
from webui.functions import PageFunction
from webui.guard import md
from webui.jobs import job, job_note
from webui.models import use
from webui.widgets import KEEP, chart

RESULTS = "own_evaluation"  # {"function": title, "metric": its metric in words, "variants": {variant: rates}}


def by_openings(fn: PageFunction) -> bool:
    """Whether ``fn`` is measured by its reply openings (else by its reply pattern)."""
    return fn.function.name == "openings"


def evaluation_prompts(prompts: PromptSet, langs: list[str], labels: tuple[str, str], per_label: int) -> PromptSet:
    """The held-out prompts of ``langs`` when the file has some of both labels in each, else all its prompts."""
    held = prompts.filter(split="heldout")
    split = "heldout" if all(len(held.filter(lang=lang, label=label)) for lang in langs for label in labels) else ""
    if not split:
        st.caption("The file has no held-out prompts of both labels in every language picked: evaluating on all its "
                   "prompts (the scan's too).")
    return heldout_prompts(langs, per_label, prompts, split=split)


def own_settings(fn: PageFunction, key: str) -> dict:
    """Languages, the prompts (``evaluation_prompts``) and, for a reply pattern, the reply length of an evaluation
    (widgets keyed by ``key``); no prompts when no language is picked."""
    columns = st.columns(2 if by_openings(fn) else 3)
    langs = columns[0].multiselect("Languages", fn.prompts.languages, default=fn.prompts.languages,
                                   key=f"{key}_langs", **KEEP)
    per_label = columns[1].number_input("Prompts per label and language", 1, 500, 20, key=f"{key}_per_label", **KEEP)
    tokens = 0 if by_openings(fn) else columns[2].number_input("Max new tokens per reply", 4, 256, 32, step=4,
                                                               key=f"{key}_tokens", **KEEP)
    prompts = evaluation_prompts(fn.prompts, langs, fn.labels, per_label) if langs else None
    return {"langs": langs, "prompts": prompts, "tokens": tokens}


def own_work(settings: dict) -> Work:
    """The work of one variant's evaluation: a pass per prompt, and the replies' tokens for a reply pattern."""
    n = len(settings["prompts"]) if settings["prompts"] is not None else 0
    return Work(prompts=n, new_tokens=n * settings["tokens"])


def own_variants(lm: LoadedModel, fn: PageFunction, settings: dict, variants: Mapping[str, tuple[list, Patch | None]],
                 report: Progress, on_result: Callable[[dict], None]) -> None:
    """The rates of ``fn``'s metric on ``settings`` (``own_settings``) for each variant (name: (interventions, weight
    patch or None)) of ``lm``."""
    prompts, langs = settings["prompts"], settings["langs"]

    def rates(ivs: list, progress: Progress) -> dict:
        if by_openings(fn):
            return opening_rates(lm, prompts, langs, fn.labels, fn.openings, fn.threshold, ivs, progress=progress)
        return match_rates(lm, prompts, langs, fn.labels, fn.pattern, ivs, max_new_tokens=settings["tokens"],
                           progress=progress)

    variant_results(lm, variants, rates, report, on_result)


def show_own(results: dict[str, dict], fn: PageFunction, key: str) -> None:
    """The rates of each variant ({name: ``match_rates`` or ``opening_rates``}) as a chart with its explanation."""
    if by_openings(fn):
        figure = hits_figure(results, fn.labels, "prompts counted",
                             f"Replies opening with one of your {len(fn.openings)} openings (p ≥ {fn.threshold:g})")
        what = (f"the share of prompts whose reply opens with one of your openings with probability ≥ "
                f"{fn.threshold:g} (one pass per prompt, nothing generated)")
    else:
        figure = hits_figure(results, fn.labels, "replies that match", f"Replies matching /{fn.pattern.pattern}/")
        what = f"the share of greedy replies that match /{md(fn.pattern.pattern)}/"
    chart(figure, key, f"bars: {what}, per language and label, one bar per variant (plain or before: as loaded; "
                       "intervened: with this session's interventions; patched or after: with the weight patch), with "
                       f"95% intervals. The function's neurons show where the changed bar of {fn.labels[0]} prompts "
                       "moves away from the plain one.")


def own_evaluation(role: str, fn: PageFunction, interventions: list, patch: Patch | None) -> None:
    first, second = fn.labels
    shows = "open so" if by_openings(fn) else "match"
    st.caption(f"Your function **{md(fn.title)}** on {md(fn.source)}: {md(fn.function.metric)}, per language and "
               f"label. The replies to {first} prompts should {shows}, those to {second} ones not; switching its "
               f"neurons off should lower the {first} share.")
    settings = own_settings(fn, "evm")
    variants = {"plain": ([], None)}
    if interventions:
        variants["intervened"] = (interventions, None)
    if patch is not None:
        variants["patched"] = ([], patch)
    doing = "Scoring reply openings…" if by_openings(fn) else "Writing and matching replies…"
    if st.button("Run evaluation", type="primary", key="evm_run", disabled=settings["prompts"] is None):
        with job(RESULTS, len(variants), "model variants", doing) as (report, keep), \
                use(role, with_patch=False) as lm:
            own_variants(lm, fn, settings, variants, report, lambda done: keep(
                {"function": fn.title, "metric": fn.function.metric, "variants": done}, len(done)))
    job_note(RESULTS)
    results = st.session_state.get(RESULTS)
    if results and (results["function"], results["metric"]) == (fn.title, fn.function.metric):
        show_own(results["variants"], fn, "evm_chart")
