"""Bias effects with random controls: the stereotype and LM scores (``bias.bias_scores``) and perplexity of a
model as loaded, with effects (``effects.Effect``: suppress, activate, patch) and with the same effects on
random neurons of the same per-layer counts, and the change of each against the plain model.

``bias_effects`` returns the real effect's figures (``measured``: the ``bias_scores`` dict, a ``perplexity``
per language that has bundled benign text, ``utility``: {"perplexity": English}) with ``effects``; given seeds,
also blocks shaped like ``evaluate_effects``'s (rates are fractions)::

    "baseline": {"languages": {lang: FIGURES}, "overall": FIGURES, "utility": {"perplexity"}}
        FIGURES = {n, stereotype_score, stereotype_stderr, lm_score, lm_stderr, icat, distance_from_50[, perplexity]}
    "controls": {"seeds": [0, 1, 2], "runs": [{"seed": 0, <as baseline>}, ...],
                 "summary": {<as baseline, each figure but n and the stderrs a spread: mean, sd, min, max>}}
    "effect": {"languages": {lang: {"stereotype_score": CHANGE, "distance_from_50": CHANGE, "lm_score": CHANGE,
                                    "perplexity": RELATIVE}}, "overall": {<the same, no perplexity>},
               "utility": {"perplexity": RELATIVE}}
        CHANGE = {"real", "real_stderr", "controls", "controls_sd", "excess"}: the real set's change, the controls'
        mean change and their spread, and the real change beyond the controls'; RELATIVE = {"real", "controls",
        "controls_sd"}: relative perplexity changes.

``distance_from_50`` is |stereotype score − 0.5|: a negative change moves the model toward no preference.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from neuronlab.evaluation.bias import BiasItem, bias_scores
from neuronlab.evaluation.effects import (
    Effect,
    applied,
    is_plain_control,
    planned_runs,
    run_title,
    spread,
    with_controls,
)
from neuronlab.evaluation.metrics import EVAL_ASSETS, benign_texts, perplexity
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import Intervention
from neuronlab.progress import Progress, no_progress

KEEP = ("n", "stereotype_score", "stereotype_stderr", "lm_score", "lm_stderr", "icat")
RATES = {"stereotype_score": "stereotype_stderr", "distance_from_50": "stereotype_stderr", "lm_score": "lm_stderr"}
SPREAD = ("stereotype_score", "distance_from_50", "lm_score", "icat", "perplexity")  # the figures controls spread


def measured(lm: LoadedModel, items: Sequence[BiasItem], interventions: Iterable[Intervention] = (),
             batch_size: int = 8) -> dict:
    """``bias_scores`` of ``items`` with the perplexity of each language's bundled benign text (where there is
    some) and ``utility``: {"perplexity": English}."""
    interventions = list(interventions)
    result = bias_scores(lm, items, interventions, batch_size)
    for lang, block in result["languages"].items():
        if (EVAL_ASSETS / "benign" / f"{lang}.txt").exists():
            block["perplexity"] = perplexity(lm, benign_texts(lang), interventions)
    english = result["languages"].get("en", {}).get("perplexity") or perplexity(lm, benign_texts("en"), interventions)
    return {**result, "utility": {"perplexity": english}}


def _figures(block: dict) -> dict:
    out = {k: block[k] for k in KEEP} | {"distance_from_50": abs(block["stereotype_score"] - 0.5)}
    return out | ({"perplexity": block["perplexity"]} if "perplexity" in block else {})


def compact(result: dict) -> dict:
    """The figures of a ``measured`` result per language, overall and utility, without domains."""
    return {"languages": {lang: _figures(b) for lang, b in result["languages"].items()},
            "overall": _figures(result["overall"]), "utility": dict(result["utility"])}


def _summary(runs: Sequence[dict]) -> dict:
    """The controls' spread of every figure of ``compact`` but counts and stderrs."""
    def spreads(blocks: list[dict]) -> dict:
        return {k: spread([b[k] for b in blocks]) for k in SPREAD if k in blocks[0]}
    return {"languages": {lang: spreads([r["languages"][lang] for r in runs]) for lang in runs[0]["languages"]},
            "overall": spreads([r["overall"] for r in runs]),
            "utility": {"perplexity": spread([r["utility"]["perplexity"] for r in runs])}}


def _relative(base: float, real: float, controls: dict) -> dict:
    return {"real": real / base - 1, "controls": controls["mean"] / base - 1, "controls_sd": controls["sd"] / base}


def _change(base: dict, real: dict, controls: dict) -> dict:
    """Score changes (fractions) and relative perplexity changes vs the plain model, for the real set and for
    the controls' mean, and the excess of the real change over the controls'."""
    def block(b: dict, r: dict, c: dict) -> dict:
        out = {}
        for key, stderr in RATES.items():
            d_real, d_ctrl = r[key] - b[key], c[key]["mean"] - b[key]
            out[key] = {"real": d_real, "real_stderr": math.hypot(r[stderr], b[stderr]), "controls": d_ctrl,
                        "controls_sd": c[key]["sd"], "excess": d_real - d_ctrl}
        if "perplexity" in b:
            out["perplexity"] = _relative(b["perplexity"], r["perplexity"], c["perplexity"])
        return out
    return {"languages": {lang: block(b, real["languages"][lang], controls["languages"][lang])
                          for lang, b in base["languages"].items()},
            "overall": block(base["overall"], real["overall"], controls["overall"]),
            "utility": {"perplexity": _relative(base["utility"]["perplexity"], real["utility"]["perplexity"],
                                                controls["utility"]["perplexity"])}}


def bias_effects(lm: LoadedModel, items: Sequence[BiasItem], effects: Sequence[Effect], seeds: Sequence[int] = (0, 1, 2),
                 batch_size: int = 8, progress: Progress = no_progress) -> dict:
    """The bias figures of ``items`` with ``effects`` on and, given ``seeds``, of the plain model and of the same
    effects on random neurons (module doc). A control whose patches change no weight is the plain model's
    result. The model is bit-identical afterwards."""
    runs = planned_runs(lm, effects, seeds)
    results: list[dict] = []
    for i, (name, run) in enumerate(runs):
        progress(i / len(runs), f"{run_title(name)} ({i + 1}/{len(runs)}): {len(items)} items × 3 sentences")
        patches = [e.make_patch(e.neurons) for e in run if e.mode == "patch"]
        if i > 1 and is_plain_control(lm, run, patches):  # runs: baseline, effect, then the controls
            results.append(results[0])
            continue
        with applied(lm, run, patches) as interventions:
            results.append(measured(lm, items, interventions, batch_size))
    progress(1.0, "Evaluation done")
    return with_controls(results, effects, seeds, compact, _summary, _change)
