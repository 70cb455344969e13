"""The Evaluate page for the user's own function: the share of greedy replies that match its pattern, per language
and label, as loaded, intervened and patched (``evaluation.functions.match_rates``); its settings, runs and chart
serve the Transfer page's before/after too."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import streamlit as st

from neuronlab.data.prompts import PromptSet
from neuronlab.evaluation.functions import match_rates
from neuronlab.experiments import heldout_prompts, variant_results
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.patches import Patch
from neuronlab.plots import match_figure
from neuronlab.progress import Progress
from webui.functions import PageFunction
from webui.guard import md
from webui.jobs import job, job_note
from webui.models import use
from webui.widgets import KEEP, chart

RESULTS = "match_evaluation"  # {"function": title, "pattern": text, "variants": {variant: match_rates result}}


def evaluation_prompts(prompts: PromptSet, langs: list[str], labels: tuple[str, str], per_label: int) -> PromptSet:
    """The held-out prompts of ``langs`` when the file has some of both labels in each, else all its prompts."""
    held = prompts.filter(split="heldout")
    split = "heldout" if all(len(held.filter(lang=lang, label=label)) for lang in langs for label in labels) else ""
    if not split:
        st.caption("The file has no held-out prompts of both labels in every language picked: evaluating on all its "
                   "prompts (the scan's too).")
    return heldout_prompts(langs, per_label, prompts, split=split)


def match_settings(fn: PageFunction, key: str) -> dict:
    """Languages, the prompts (``evaluation_prompts``) and the reply length of a match-rate evaluation (widgets keyed
    by ``key``); no prompts when no language is picked."""
    left, middle, right = st.columns(3)
    langs = left.multiselect("Languages", fn.prompts.languages, default=fn.prompts.languages, key=f"{key}_langs",
                             **KEEP)
    per_label = middle.number_input("Prompts per label and language", 1, 500, 20, key=f"{key}_per_label", **KEEP)
    tokens = right.number_input("Max new tokens per reply", 4, 256, 32, step=4, key=f"{key}_tokens", **KEEP)
    prompts = evaluation_prompts(fn.prompts, langs, fn.labels, per_label) if langs else None
    return {"langs": langs, "prompts": prompts, "tokens": tokens}


def match_variants(lm: LoadedModel, fn: PageFunction, settings: dict, variants: Mapping[str, tuple[list, Patch | None]],
                   report: Progress, on_result: Callable[[dict], None]) -> None:
    """``match_rates`` of ``settings`` (``match_settings``) for each variant (name: (interventions, weight patch or
    None)) of ``lm``."""
    variant_results(lm, variants, lambda ivs, progress: match_rates(
        lm, settings["prompts"], settings["langs"], fn.labels, fn.pattern, ivs, max_new_tokens=settings["tokens"],
        progress=progress), report, on_result)


def show_matches(results: dict[str, dict], fn: PageFunction, key: str) -> None:
    """The match rates of each variant ({name: ``match_rates``}) as a chart with its explanation."""
    chart(match_figure(results, fn.labels, fn.pattern.pattern), key,
          f"bars: the share of greedy replies that match /{md(fn.pattern.pattern)}/, per language and label, one "
          "bar per variant (plain or before: as loaded; intervened: with this session's interventions; patched or "
          "after: with the weight patch), with 95% intervals. The function's neurons show where the changed bar of "
          f"{fn.labels[0]} prompts moves away from the plain one.")


def match_evaluation(role: str, fn: PageFunction, interventions: list, patch: Patch | None) -> None:
    first, second = fn.labels
    st.caption(f"Your function **{md(fn.title)}** on {md(fn.source)}: {md(fn.function.metric)}, per language and "
               f"label. The {first} prompts should match, the {second} ones not; switching its neurons off should "
               f"lower the {first} share.")
    settings = match_settings(fn, "evm")
    variants = {"plain": ([], None)}
    if interventions:
        variants["intervened"] = (interventions, None)
    if patch is not None:
        variants["patched"] = ([], patch)
    if st.button("Run evaluation", type="primary", key="evm_run", disabled=settings["prompts"] is None):
        with job(RESULTS, len(variants), "model variants", "Writing and matching replies…") as (report, keep), \
                use(role, with_patch=False) as lm:
            match_variants(lm, fn, settings, variants, report, lambda done: keep(
                {"function": fn.title, "pattern": fn.pattern.pattern, "variants": done}, len(done)))
    job_note(RESULTS)
    results = st.session_state.get(RESULTS)
    if results and (results["function"], results["pattern"]) == (fn.title, fn.pattern.pattern):
        show_matches(results["variants"], fn, "evm_chart")
