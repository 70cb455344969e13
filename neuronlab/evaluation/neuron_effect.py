"""The causal effect of one neuron: how the refusal score moves when that neuron alone is switched off, and when
it alone is scaled up, beside single random neurons of the same layer and site (the reference an effect is
told apart from); and of a neuron set layer by layer (``layer_effects``: its neurons of one layer switched off
together).

The refusal score is ``metrics.refusal_score`` (the log-probability that the reply opens with a refusal, each
prompt read once and its KV cache shared by the openings), averaged over a language's harmful or harmless
prompts; every figure is exact for the prompts given, not an estimate from gradients. For the bias function
(``neuron_bias_effect``) the score is the mean stereotype preference (``bias.preference``: score of the
stereotype sentence − of the anti-stereotype one, nats per token) over a language's bias items.
"""
from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from neuronlab.data.prompts import PromptSet
from neuronlab.evaluation.bias import BiasItem, preference
from neuronlab.evaluation.metrics import refusal_score
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import DEFAULT_SCALE, Intervention
from neuronlab.neurons.sets import Neuron, NeuronSet, NeuronSetError
from neuronlab.progress import Progress, no_progress

LABELS = ("harmful", "harmless")
MODES = ("suppress", "activate")
PREFERENCE = ("preference",)  # the one "label" of a bias effect's tables
Table = dict[str, dict[str, float]]  # {lang: {label: mean score}}


@dataclass(frozen=True)
class NeuronEffect:
    """Mean scores per language and label (refusal: the refusal score on harmful and harmless prompts; bias: the
    stereotype preference, one "label"): as loaded, with the neuron switched off, with it scaled by ``scale``,
    and the same two changes on each of ``controls`` random neurons of its layer and site."""

    neuron: Neuron
    scale: float
    n: dict[str, int]  # prompts per label (bias: items), per language
    baseline: Table
    changed: dict[str, Table]  # {mode: table}
    controls: dict[str, list[Table]]  # {mode: [table per random neuron]}
    control_neurons: list[Neuron]
    labels: tuple[str, ...] = LABELS
    score: str = "refusal score"  # what the tables hold, in words

    def change(self, mode: str) -> Table:
        """The neuron's effect: score with it changed − score as loaded."""
        return _minus(self.changed[mode], self.baseline)

    def control_change(self, mode: str) -> dict[str, dict[str, tuple[float, float]]]:
        """{lang: {label: (mean, sd)}} of the same change made to each random neuron (sd 0 for one neuron)."""
        deltas = [_minus(t, self.baseline) for t in self.controls[mode]]
        return {lang: {label: _mean_sd([d[lang][label] for d in deltas]) for label in self.labels}
                for lang in self.baseline}

    def to_dict(self) -> dict:
        return {"neuron": list(self.neuron), "score": self.score, "scale": self.scale, "prompts_per_label": self.n,
                "baseline": self.baseline,
                "change": {mode: self.change(mode) for mode in MODES},
                "random_change": {mode: {lang: {label: {"mean": m, "sd": s} for label, (m, s) in by_label.items()}
                                         for lang, by_label in self.control_change(mode).items()} for mode in MODES},
                "random_neurons": [list(n) for n in self.control_neurons]}


def _minus(a: Table, b: Table) -> Table:
    return {lang: {label: a[lang][label] - b[lang][label] for label in b[lang]} for lang in b}


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def control_neurons(lm: LoadedModel, neuron: Neuron, count: int, seed: int = 0) -> list[Neuron]:
    """``count`` random neurons of ``neuron``'s layer and site, never the neuron itself (seeded)."""
    others = [i for i in range(lm.arch.sites[neuron.site].size) if i != neuron.index]
    picked = random.Random(seed).sample(others, min(count, len(others)))
    return [Neuron(neuron.layer, neuron.site, i) for i in sorted(picked)]


def _effect(lm: LoadedModel, neuron: Neuron, score, langs: Sequence[str], labels: tuple[str, ...], what: str,
            scale: float, controls: int, seed: int, progress: Progress) -> tuple[Table, dict, dict, list[Neuron]]:
    """(as loaded, {mode: the neuron's table}, {mode: [each control's table]}, the controls) of
    ``score(lang, label, interventions)``."""
    NeuronSet([neuron]).validate(lm.arch)
    randoms = control_neurons(lm, neuron, controls, seed)
    runs = [("as loaded", None)] + [(f"{neuron_name(n)} {mode}", (n, mode)) for n in [neuron, *randoms] for mode in MODES]

    def measure(change) -> Table:
        ivs = [] if change is None else [Intervention(NeuronSet([change[0]]), change[1],
                                                      scale if change[1] == "activate" else None)]
        return {lang: {label: score(lang, label, ivs) for label in labels} for lang in langs}
    tables = []
    for i, (name, change) in enumerate(runs):
        progress(i / len(runs), f"{what.capitalize()} with {name} ({i + 1}/{len(runs)})")
        tables.append(measure(change))
    progress(1.0, "Causal effect measured")
    by_mode = {mode: tables[1 + k::2] for k, mode in enumerate(MODES)}  # the neuron's, then each control's
    return tables[0], {mode: t[0] for mode, t in by_mode.items()}, {mode: t[1:] for mode, t in by_mode.items()}, randoms


def neuron_effect(lm: LoadedModel, neuron: Neuron, prompts: PromptSet, langs: Sequence[str],
                  scale: float = DEFAULT_SCALE, controls: int = 4, seed: int = 0,
                  progress: Progress = no_progress) -> NeuronEffect:
    """The refusal-score effect of switching ``neuron`` off and of scaling it by ``scale``, on ``prompts`` of
    ``langs``, with ``controls`` random neurons of the same layer and site changed the same way, one at a time."""
    texts = {(lang, label): prompts.filter(lang=lang, label=label).texts for lang in langs for label in LABELS}
    empty = [f"{lang}/{label}" for (lang, label), t in texts.items() if not t]
    if empty:
        raise NeuronSetError(f"no prompts for {', '.join(empty)}")

    def score(lang: str, label: str, ivs: list[Intervention]) -> float:
        return refusal_score(lm, texts[lang, label], lang, ivs).mean().item()
    baseline, changed, tables, randoms = _effect(lm, neuron, score, langs, LABELS, "refusal score", scale, controls,
                                                 seed, progress)
    return NeuronEffect(neuron, scale, {lang: len(texts[lang, "harmful"]) for lang in langs}, baseline, changed,
                        tables, randoms)


def neuron_bias_effect(lm: LoadedModel, neuron: Neuron, items: Sequence[BiasItem], scale: float = DEFAULT_SCALE,
                       controls: int = 4, seed: int = 0, progress: Progress = no_progress) -> NeuronEffect:
    """``neuron_effect`` for bias: the change of the mean stereotype preference (``bias.preference``) of ``items``,
    per language, when ``neuron`` alone is switched off or scaled by ``scale``, beside ``controls`` random neurons
    of its layer and site."""
    by_lang: dict[str, list[BiasItem]] = {}
    for it in items:
        by_lang.setdefault(it.lang, []).append(it)
    if not by_lang:
        raise NeuronSetError("no bias items to measure the effect on")

    def score(lang: str, label: str, ivs: list[Intervention]) -> float:
        return preference(lm, by_lang[lang], ivs).mean().item()
    baseline, changed, tables, randoms = _effect(lm, neuron, score, list(by_lang), PREFERENCE, "stereotype preference",
                                                 scale, controls, seed, progress)
    return NeuronEffect(neuron, scale, {lang: len(its) for lang, its in by_lang.items()}, baseline, changed, tables,
                        randoms, PREFERENCE, "stereotype preference")


def neuron_name(n: Neuron) -> str:
    """"L20 mlp #1292"."""
    return f"L{n.layer} {n.site} #{n.index}"


def layer_effects(lm: LoadedModel, neurons: NeuronSet, prompts: PromptSet, lang: str,
                  progress: Progress = no_progress) -> dict[str, list[float]]:
    """{label: [change of the mean refusal score per layer]} when ``neurons``' neurons of that layer alone are
    switched off together (0.0, with no pass, for a layer the set has none in)."""
    neurons.validate(lm.arch)
    texts = {label: prompts.filter(lang=lang, label=label).texts for label in LABELS}
    if not all(texts.values()):
        raise NeuronSetError(f"no prompts for {lang}/{' and '.join(label for label, t in texts.items() if not t)}")
    base = {label: refusal_score(lm, t, lang).mean().item() for label, t in texts.items()}
    out = {label: [0.0] * lm.arch.n_layers for label in LABELS}
    layers = neurons.layers
    for i, layer in enumerate(layers):
        own = NeuronSet(n for n in neurons if n.layer == layer)
        progress(i / len(layers), f"Refusal score with layer {layer}'s {len(own)} neurons off ({i + 1}/{len(layers)})")
        off = [Intervention(own, "suppress")]
        for label, t in texts.items():
            out[label][layer] = refusal_score(lm, t, lang, off).mean().item() - base[label]
    progress(1.0, "Layer effects measured")
    return out
