"""The Evaluate page for the user's own function: the share of greedy replies that match its pattern, per language
and label, as loaded, intervened and patched (``evaluation.functions.match_rates``)."""
from __future__ import annotations

from contextlib import nullcontext

import streamlit as st

from neuronlab.data.prompts import PromptSet
from neuronlab.evaluation.functions import match_rates
from neuronlab.experiments import heldout_prompts
from neuronlab.neurons.patches import Patch, patched
from neuronlab.plots import match_figure
from neuronlab.progress import span
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


def match_evaluation(role: str, fn: PageFunction, interventions: list, patch: Patch | None) -> None:
    first, second = fn.labels
    st.caption(f"Your function **{md(fn.title)}** on {md(fn.source)}: {md(fn.function.metric)}, per language and "
               f"label. The {first} prompts should match, the {second} ones not; switching its neurons off should "
               f"lower the {first} share.")
    left, middle, right = st.columns(3)
    langs = left.multiselect("Languages", fn.prompts.languages, default=fn.prompts.languages, key="evm_langs", **KEEP)
    per_label = middle.number_input("Prompts per label and language", 1, 500, 20, key="evm_per_label", **KEEP)
    tokens = right.number_input("Max new tokens per reply", 4, 256, 32, step=4, key="evm_tokens", **KEEP)
    variants = {"plain": ([], None)}
    if interventions:
        variants["intervened"] = (interventions, None)
    if patch is not None:
        variants["patched"] = ([], patch)
    if st.button("Run evaluation", type="primary", key="evm_run", disabled=not langs):
        prompts = evaluation_prompts(fn.prompts, langs, fn.labels, per_label)
        with job(RESULTS, len(variants), "model variants", "Writing and matching replies…") as (report, keep), \
                use(role, with_patch=False) as lm:
            done = {}
            for i, (name, (ivs, weights)) in enumerate(variants.items()):
                with patched(lm, weights) if weights is not None else nullcontext():
                    done[name] = match_rates(lm, prompts, langs, fn.labels, fn.pattern, ivs, max_new_tokens=tokens,
                                             progress=span(report, i / len(variants), (i + 1) / len(variants),
                                                           f"{name} ({i + 1}/{len(variants)}): "))
                keep({"function": fn.title, "pattern": fn.pattern.pattern, "variants": dict(done)}, len(done))
    job_note(RESULTS)
    results = st.session_state.get(RESULTS)
    if results and (results["function"], results["pattern"]) == (fn.title, fn.pattern.pattern):
        chart(match_figure(results["variants"], fn.labels, fn.pattern.pattern), "evm_chart",
              f"bars: the share of greedy replies that match /{md(fn.pattern.pattern)}/, per language and label, one "
              "bar per variant (plain: as loaded; intervened: with this session's interventions; patched: with its "
              "weight patch), with 95% intervals. The function's neurons show where the intervened bar of "
              f"{first} prompts drops below the plain one.")
