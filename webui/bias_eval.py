"""The Evaluate page for the bias function: stereotype and LM scores on the bundled bias items, as loaded,
intervened and patched."""
from __future__ import annotations

from contextlib import nullcontext

import streamlit as st

from neuronlab.data.bias import bundled_bias
from neuronlab.evaluation.bias import bias_scores
from neuronlab.neurons.patches import Patch, patched
from neuronlab.plots import bias_figure
from webui.jobs import job, job_note
from webui.models import use
from webui.widgets import KEEP, chart

LANGS = ("en", "fr", "es")
RESULTS = "bias_evaluation"


def bias_evaluation(role: str, interventions: list, patch: Patch | None) -> None:
    st.caption("Bias: each bundled item is a sentence with a blank and three fills (a stereotype, its opposite, an "
               "unrelated word); the model reads the three sentences, and the one it finds likelier counts.")
    left, right = st.columns(2)
    langs = left.multiselect("Languages", LANGS, default=["en"], key="evb_langs", **KEEP)
    per_lang = right.number_input("Held-out items per language (of 116)", 1, 116, 40, key="evb_items", **KEEP)
    variants = {"plain": ([], None)}
    if interventions:
        variants["intervened"] = (interventions, None)
    if patch is not None:
        variants["patched"] = ([], patch)
    if st.button("Run bias evaluation", type="primary", key="evb_run", disabled=not langs):
        items = [it for lang in langs for it in list(bundled_bias([lang], split="heldout"))[:per_lang]]
        with job(RESULTS, len(variants), "model variants", "Scoring the bias items…") as (report, keep), \
                use(role, with_patch=False) as lm:
            done = {}
            for i, (name, (ivs, weights)) in enumerate(variants.items()):
                report(i / len(variants), f"{name} ({i + 1}/{len(variants)}): {len(items)} items × 3 sentences")
                with patched(lm, weights) if weights is not None else nullcontext():
                    done[name] = bias_scores(lm, items, ivs)
                keep(dict(done), len(done))
    job_note(RESULTS)
    if (results := st.session_state.get(RESULTS)):
        chart(bias_figure(results), "evb_chart",
              "bars: the share of held-out items where the model prefers the stereotype fill (left; the dashed line "
              "at 50% is no preference) and where a meaningful fill beats the unrelated one (right: the model still "
              "reads the language), per variant, with 95% intervals. Removing bias moves the left bars toward 50% "
              "while the right ones hold.")
