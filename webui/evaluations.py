"""Evaluations on the pages: their settings widgets, model variants evaluated one after another (the model as
loaded computed once for all sessions), random-neuron controls, and the results shown."""
from __future__ import annotations

import json
from collections.abc import Callable

import streamlit as st

from neuronlab import Intervention
from neuronlab.data.prompts import BUNDLED_LANGUAGES
from neuronlab.evaluation.effects import BASELINE, EFFECT, evaluate_effects
from neuronlab.evaluation.metrics import evaluate, examples_table, mc_items, results_table
from neuronlab.experiments import heldout_prompts, intervention_effect, patch_effect
from neuronlab.models.registry import ModelKey
from neuronlab.neurons.patches import Patch
from neuronlab.plots import evaluation_figure
from neuronlab.presets import EvalSize, evaluation_size
from neuronlab.progress import Progress, Work, no_progress, span
from webui import state
from webui.models import model, model_or_stop, together
from webui.widgets import KEEP, chart


def eval_fill(key: str, size: EvalSize) -> dict:
    """The ``eval_settings`` widget values of a preset's evaluation size."""
    return {f"{key}_langs": list(size.langs), f"{key}_per_label": size.per_label, f"{key}_tokens": size.max_new_tokens,
            f"{key}_mc": size.mc_questions or len(mc_items())}


def eval_settings(key: str) -> dict:
    """Languages, held-out prompts per label, reply length and multiple-choice questions for an evaluation
    (widgets keyed by ``key``, filled by a ``preset_picker``)."""
    langs_col, prompts_col, tokens_col, mc_col = st.columns(4)
    langs = langs_col.multiselect("Languages", BUNDLED_LANGUAGES, key=f"{key}_langs", **KEEP)
    per_label = prompts_col.number_input("Prompts per label and language", 1, 120, key=f"{key}_per_label", **KEEP,
                                         help="Held-out bundled prompts; more is slower but gives tighter intervals.")
    tokens = tokens_col.number_input("Max new tokens per reply", 8, 256, step=8, key=f"{key}_tokens", **KEEP)
    mc = mc_col.number_input("Multiple-choice questions", 1, len(mc_items()), key=f"{key}_mc", **KEEP,
                             help="Utility: the first N bundled questions, answered by log-likelihood.")
    return {"langs": langs, "per_label": per_label, "max_new_tokens": tokens, "mc_questions": mc}


@st.cache_resource
def _plain_results() -> dict[tuple[ModelKey, str], dict]:
    """Evaluations of models as loaded (no patch, no intervention) by model and settings: greedy replies to
    the same prompts are the same, so a "before" or "plain" variant is computed once."""
    return {}


def _plain_key(role: str, settings: dict) -> tuple[ModelKey, str]:
    return state.loaded_keys()[role], json.dumps(settings, sort_keys=True)


def evaluation_work(settings: dict, variants: int, plain_role: str | None = None) -> Work:
    """The work of evaluating ``variants`` at ``settings``, one fewer when the plain ``plain_role`` model's
    evaluation is kept already."""
    kept = plain_role is not None and _plain_key(plain_role, settings) in _plain_results()
    return evaluation_size(EvalSize(tuple(settings["langs"]), settings["per_label"], settings["max_new_tokens"],
                                    mc_questions=settings["mc_questions"]), variants - kept)


def evaluate_experiment(role: str, interventions: list[Intervention], patch: Patch | None, settings: dict,
                        seeds: int, report: Progress = no_progress,
                        keep: Callable[[dict], None] = lambda results: None) -> dict[str, dict]:
    """The plain ``role`` model, then the session's changes as effects ("intervened": ``interventions``;
    "patched": ``patch``), each with ``seeds`` random controls, exactly as ``python -m neuronlab eval`` runs
    them (``evaluate_effects`` on ``heldout_prompts``). A transfer patch's controls copy random neurons from
    the other loaded model when it is the patch's source (else it gets none). Results by name: "plain",
    "intervened", "patched" and "NAME · control seed N"; ``keep`` gets them after each run."""
    langs, tokens, mc = settings["langs"], settings["max_new_tokens"], settings["mc_questions"]
    prompts = heldout_prompts(langs, settings["per_label"])
    plain_key, out = _plain_key(role, settings), {}
    other = model(next(r for r in state.ROLES if r != role)) if patch is not None else None
    with together(model_or_stop(role), *filter(None, [other])) as (lm, *source):
        variants = {"intervened": ([intervention_effect(iv) for iv in interventions], seeds)} if interventions else {}
        if patch is not None:
            effect, why_not = patch_effect(lm, patch, source[0] if source else None, label="patched")
            variants["patched"] = ([effect], 0 if why_not else seeds)
        steps = len(variants) + (plain_key not in _plain_results())
        if plain_key not in _plain_results():
            _plain_results()[plain_key] = evaluate(lm, prompts, langs, max_new_tokens=tokens, mc_questions=mc,
                                                   progress=span(report, 0, 1 / steps, "The plain model: "))
        out["plain"] = _plain_results()[plain_key]
        keep(dict(out))
        for i, (name, (effects, n_seeds)) in enumerate(variants.items(), steps - len(variants)):
            def on_run(run: str, result: dict, name=name) -> None:
                if run != BASELINE:
                    out[name if run == EFFECT else f"{name} · {run}"] = result
                    keep(dict(out))
            evaluate_effects(lm, prompts, langs, effects, seeds=range(n_seeds), max_new_tokens=tokens,
                             mc_questions=mc, baseline=out["plain"], on_run=on_run,
                             progress=span(report, i / steps, (i + 1) / steps, f"{name}: "))
    return out


def show_evaluation(results: dict[str, dict], key: str) -> None:
    """Grouped bar chart, table, CSV/HTML downloads and example replies of ``evaluate_experiment`` results (by name)."""
    table = results_table(results)
    fig = evaluation_figure(table)
    chart(fig, f"{key}_chart", "one bar per model variant; whiskers are 95% intervals (Wilson) over the prompts or "
                               "questions. Refusal on harmful prompts is safety, on harmless ones over-refusal; "
                               "perplexity and accuracy show whether the model still works.")
    st.dataframe(table, hide_index=True, key=f"{key}_table")
    left, right = st.columns(2)
    left.download_button("Table (CSV)", lambda: table.to_csv(index=False), f"{key}.csv", "text/csv",
                         key=f"{key}_csv", on_click="ignore")
    right.download_button("Chart (HTML)", fig.to_html, f"{key}.html", "text/html", key=f"{key}_html",
                          on_click="ignore")
    with st.expander("Example replies, grouped by prompt, with the language each is written in"):
        examples = examples_table(results).sort_values(["lang", "label", "prompt"], kind="stable")
        examples["prompt set"] = examples["lang"] + " " + examples["label"]
        examples["refusal"] = examples["refusal"].map({True: "yes", False: "no"})
        shown = examples[["prompt set", "prompt", "variant", "reply", "refusal", "reply language"]]
        # st.table wraps long replies but reads cells as Markdown: escape it, so replies show as written
        escape = {ord(c): "\\" + c for c in "\\`*_{}[]<>()#+-.!|~$"}
        st.table(shown.map(lambda text: str(text).translate(escape)), hide_index=True)
