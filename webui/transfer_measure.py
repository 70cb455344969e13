"""The Transfer page's before/after measure, for the function picked in the sidebar: refusal and utility on held-out
prompts (``evaluations``), the stereotype and LM scores on held-out bias items (``bias_eval``), or the share of
replies that match your function's pattern, or of prompts whose reply opens with one of its openings, on your prompts
(``own_eval``); the destination as loaded ("before") and with the moved neurons ("after")."""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from neuronlab.evaluation.metrics import CHARS_PER_TOKEN
from neuronlab.neurons.patches import Patch
from neuronlab.progress import Progress, Work
from webui.bias_eval import bundled_items, score_variants, show_bias
from webui.evaluations import eval_settings, evaluate_experiment, evaluation_work, show_evaluation
from webui.functions import PageFunction
from webui.models import use
from webui.own_eval import own_settings, own_variants, own_work, show_own
from webui.widgets import KEEP

TOGGLES = {"refusal": "Measure refusal and utility before and after",
           "bias": "Measure the stereotype and LM scores before and after",
           "your own": "Measure your function's metric before and after"}
BIAS_ITEMS = 20  # held-out items per language the bias before/after starts with
TOWARD_50 = ("Toward 50%: the stereotype score is the share of items where the model finds the stereotype sentence "
             "likelier than its opposite, so 50% is no preference; removing bias moves it toward 50% while the LM "
             "score holds.")


def measure_settings(fn: PageFunction) -> dict | None:
    """The before/after settings of ``fn`` (None: not measured); ``ready`` says whether they can run."""
    if not st.toggle(TOGGLES[fn.name], value=True, key="tf_measure", **KEEP):
        return None
    if fn.name == "bias":
        st.caption(TOWARD_50)
        return {"items": bundled_items("tf_bias", BIAS_ITEMS)}
    if fn.name == "your own":
        return own_settings(fn, "tf_match")
    return eval_settings("tf_eval")


def ready(fn: PageFunction, settings: dict) -> bool:
    """Whether ``settings`` name something to measure (a language, an item)."""
    return bool({"bias": settings.get("items"), "your own": settings.get("prompts")}.get(fn.name, settings.get("langs")))


def measure_work(fn: PageFunction, settings: dict, dest: str) -> Work:
    """The work of measuring before and after."""
    if fn.name == "bias":
        chars = sum(len(it.sentence(fill)) for it in settings["items"] for fill in ("stereotype", "anti_stereotype",
                                                                                      "unrelated"))
        return Work(text_tokens=2 * chars / CHARS_PER_TOKEN)
    if fn.name == "your own":
        return own_work(settings) * 2
    return evaluation_work(settings, 2, dest)


def measure_transfer(fn: PageFunction, dest: str, patch: Patch, settings: dict, report: Progress,
                     kept: Callable[[dict], None]) -> None:
    """Measure ``dest`` as loaded and with ``patch``; ``kept`` gets {"before": …[, "after": …]} after each run."""
    if fn.name == "refusal":  # the experiment's "plain" and "patched" runs, named for this page
        evaluate_experiment(dest, [], patch, settings, 0, report, lambda results: kept(
            {{"plain": "before", "patched": "after"}[name]: r for name, r in results.items()}))
        return
    variants = {"before": ([], None), "after": ([], patch)}
    with use(dest, with_patch=False) as lm:
        if fn.name == "bias":
            score_variants(lm, settings["items"], variants, report, kept)
        else:
            own_variants(lm, fn, settings, variants, report, kept)


def show_measure(fn: PageFunction, results: dict) -> None:
    if fn.name == "refusal":
        show_evaluation(results, "transfer")
    elif fn.name == "bias":
        stereotype_shift(results)
        show_bias(results, "tf_bias_chart")
    else:
        show_own(results, fn, "tf_match_chart")


def stereotype_shift(results: dict) -> None:
    """Before → after of the stereotype and LM scores, overall, with the move toward 50% as the delta."""
    if "after" not in results:
        return
    before, after = results["before"]["overall"], results["after"]["overall"]
    left, right = st.columns(2)
    toward = 100 * (abs(before["stereotype_score"] - 0.5) - abs(after["stereotype_score"] - 0.5))
    left.metric("stereotype score after", f"{after['stereotype_score']:.1%} ± {after['stereotype_stderr']:.1%}",
                f"{toward:+.1f} points toward 50%", help=f"before: {before['stereotype_score']:.1%} ± "
                                                         f"{before['stereotype_stderr']:.1%}")
    right.metric("LM score after", f"{after['lm_score']:.1%} ± {after['lm_stderr']:.1%}",
                 f"{100 * (after['lm_score'] - before['lm_score']):+.1f} points",
                 help=f"before: {before['lm_score']:.1%} ± {before['lm_stderr']:.1%}")
