"""The Evaluate page for the bias function: stereotype and LM scores on bias items (the bundled ones or an
uploaded file), as loaded, intervened and patched; its items, scoring and chart serve the Transfer page's
before/after too."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import streamlit as st

from neuronlab.data.bias import BiasFileError, bundled_bias, parse_bias
from neuronlab.data.tables import FORMATS
from neuronlab.evaluation.bias import bias_scores
from neuronlab.experiments import variant_results
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.patches import Patch
from neuronlab.plots import bias_figure
from neuronlab.progress import Progress
from webui.guard import md
from webui.jobs import job, job_note
from webui.models import use
from webui.widgets import KEEP, chart, example_download

LANGS = ("en", "fr", "es")
RESULTS = "bias_evaluation"


def bundled_items(key: str = "evb", per_lang: int = 40) -> list:
    """The first held-out bundled items of each chosen language (widgets keyed by ``key``)."""
    left, right = st.columns(2)
    langs = left.multiselect("Languages", LANGS, default=["en"], key=f"{key}_langs", **KEEP)
    per_lang = right.number_input("Held-out items per language (of 116)", 1, 116, per_lang, key=f"{key}_items", **KEEP)
    return [it for lang in langs for it in list(bundled_bias([lang], split="heldout"))[:per_lang]]


def uploaded_items() -> list:
    """The items of a validated upload: its held-out split when it has one, else all of them (none, with the
    file's problem shown, when it cannot be used)."""
    upload = st.file_uploader("Bias file (JSON Lines or CSV: id, lang, domain, context with BLANK, stereotype, "
                              "anti_stereotype, unrelated, split)", key="evb_upload",
                              type=[suffix.lstrip(".") for suffix in FORMATS])
    example_download("bias")
    if upload is None:
        st.info("Upload a bias file to score its items.")
        return []
    try:
        items = parse_bias(upload.getvalue(), FORMATS[Path(upload.name).suffix.lower()], source=upload.name)
    except BiasFileError as e:
        st.error(md(e))
        return []
    heldout = items.filter(split="heldout")
    which = f"its {len(heldout)} held-out items" if len(heldout) else "all of them (the file has no held-out split)"
    st.caption(f"{md(upload.name)}: {len(items)} items in {', '.join(items.languages)} "
               f"({', '.join(items.domains)}); scoring {which}.")
    return list(heldout or items)


def score_variants(lm: LoadedModel, items: list, variants: Mapping[str, tuple[list, Patch | None]],
                   report: Progress, on_result: Callable[[dict], None]) -> None:
    """``bias_scores`` of ``items`` for each variant (name: (interventions, weight patch or None)) of ``lm``."""
    def score(interventions: list, progress: Progress) -> dict:
        progress(0.0, f"{len(items)} items × 3 sentences")
        return bias_scores(lm, items, interventions)
    variant_results(lm, variants, score, report, on_result)


def show_bias(results: dict[str, dict], key: str) -> None:
    """The stereotype and LM scores of each variant ({name: ``bias_scores``}) as a chart with its explanation."""
    chart(bias_figure(results), key,
          "bars: the share of the items where the model prefers the stereotype fill (left; the dashed line at "
          "50% is no preference) and where a meaningful fill beats the unrelated one (right: the model still "
          "reads the language), per variant, with 95% intervals. Removing bias moves the left bars toward 50% "
          "while the right ones hold.")


def bias_evaluation(role: str, interventions: list, patch: Patch | None) -> None:
    st.caption("Bias: each item is a sentence with a blank and three fills (a stereotype, its opposite, an "
               "unrelated word); the model reads the three sentences, and the one it finds likelier counts.")
    source = st.radio("Bias items", ["bundled", "upload"], key="evb_source", horizontal=True, **KEEP,
                      captions=["NeuronLab's held-out items", "your own JSON Lines or CSV file"])
    items = bundled_items() if source == "bundled" else uploaded_items()
    variants = {"plain": ([], None)}
    if interventions:
        variants["intervened"] = (interventions, None)
    if patch is not None:
        variants["patched"] = ([], patch)
    if st.button("Run bias evaluation", type="primary", key="evb_run", disabled=not items):
        with job(RESULTS, len(variants), "model variants", "Scoring the bias items…") as (report, keep), \
                use(role, with_patch=False) as lm:
            score_variants(lm, items, variants, report, lambda done: keep(done, len(done)))
    job_note(RESULTS)
    if (results := st.session_state.get(RESULTS)):
        show_bias(results, "evb_chart")
