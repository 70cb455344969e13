"""Effects made from a neuron set, and their random-neuron controls with error bars.

An ``Effect`` is one change to a model built from a neuron set: an intervention (``suppress``,
``activate`` by a scale, ``mean``-ablate) or a ``patch`` (the neurons' weights copied from another model,
as in a transfer or a donor−target difference removal, or trained, as in SS-Neuron Expansion). Because
it is rebuilt from any neuron set, the same effect can be run with random sets of the same size and
per-layer/site distribution (``neurons.random_like``): ``evaluate_effects`` measures the plain model,
the real effect and one control per seed, and reports the change of each against the plain model. A
control whose patches change no weight (random neurons a donor never changed) is the plain model: its
result is the baseline's, without generating again.

Mean-ablation sets a neuron to its mean activation at the **last prompt token** of harmless prompts:
the position where the reply begins and where the scan measures importance, so it skips the template's
shared tokens and the first token's outsized activations. The value is applied at every position.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace

from neuronlab.analysis.scoring import activation_scores
from neuronlab.data.prompts import PromptSet
from neuronlab.evaluation.metrics import evaluate
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import DEFAULT_SCALE, Intervention
from neuronlab.neurons.patches import Patch, changes_nothing, extract_patch, patched
from neuronlab.neurons.sets import NeuronSet, random_like
from neuronlab.progress import Progress, no_progress, span

MODES = ("suppress", "activate", "mean", "patch")
BASELINE, EFFECT = "baseline", "effect"  # run names: the plain model, the real effect (controls: ``control_name``)
PatchMaker = Callable[[NeuronSet], Patch]


def control_name(seed: int) -> str:
    """The name of the run of the effects on random neurons of ``seed``."""
    return f"control seed {seed}"


def mean_activations(lm: LoadedModel, neurons: NeuronSet, texts: Sequence[str], batch_size: int = 8) -> dict:
    """{neuron: mean activation at the last prompt token over ``texts``} for every neuron of ``neurons``."""
    if not texts:
        raise ValueError("mean-ablation needs reference prompts to average over")
    means = activation_scores(lm, list(texts), neurons.validate(lm.arch).sites, batch_size)  # {site: {"mean": [L, N]}}
    return {n: float(means[n.site]["mean"][n.layer, n.index]) for n in neurons}


def mean_ablation(lm: LoadedModel, neurons: NeuronSet, texts: Sequence[str], batch_size: int = 8) -> Intervention:
    """An intervention that holds each neuron at its mean activation on ``texts`` (harmless prompts)."""
    return Intervention(neurons, "mean", mean_activations(lm, neurons, texts, batch_size), label="mean-ablation")


def copy_from(source: LoadedModel) -> PatchMaker:
    """Patches that write ``source``'s weights for any neuron set (a transfer; with the target as source
    and the donor evaluated, a donor−target difference removal)."""
    return lambda neurons: extract_patch(source, neurons)


def fixed(patch: Patch) -> PatchMaker:
    """A patch that exists for its own neurons only (e.g. a file whose source model is unknown)."""
    def make(neurons: NeuronSet) -> Patch:
        if neurons != patch.neurons:
            raise ValueError("this patch cannot be rebuilt for other neurons (random controls need the model "
                             "its weights came from)")
        return patch
    return make


@dataclass(frozen=True)
class Effect:
    """One change built from ``neurons``, in an intervention's words: mode ``suppress`` | ``activate`` (by
    ``value``) | ``mean`` | ``patch`` (``make_patch(neurons)`` gives the weights to write)."""

    mode: str
    neurons: NeuronSet
    value: float = DEFAULT_SCALE
    make_patch: PatchMaker | None = None
    label: str = ""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown effect mode {self.mode!r}; use one of {', '.join(MODES)}")
        if (self.mode == "patch") != (self.make_patch is not None):
            raise ValueError("an effect of mode 'patch' (and only that mode) needs make_patch")

    def on(self, neurons: NeuronSet) -> "Effect":
        """The same effect on other neurons."""
        return replace(self, neurons=neurons)

    def describe(self) -> dict:
        out = {"mode": self.mode, "label": self.label or self.neurons.name, "neurons": len(self.neurons),
               "per_layer": {str(k): v for k, v in self.neurons.per_layer_counts().items()}}
        return {**out, "value": self.value} if self.mode == "activate" else out


def planned_runs(lm: LoadedModel, effects: Sequence[Effect], seeds: Sequence[int]) -> list[tuple[str, list[Effect]]]:
    """(name, effects) of each run, checked against ``lm`` first (a bad set fails at once, by name): with
    ``seeds``, the plain model (``BASELINE``), the real effects (``EFFECT``) and one control per seed, the same
    effects on random neurons of the same per-layer counts; without, the real effects only."""
    for e in effects:
        e.neurons.validate(lm.arch)
    runs: list[tuple[str, list[Effect]]] = [(EFFECT, list(effects))]
    if seeds:
        runs = [(BASELINE, [])] + runs + [
            (control_name(s), [e.on(random_like(e.neurons, lm.arch, s)) for e in effects]) for s in seeds]
    return runs


def run_title(name: str) -> str:
    """A run's name for a progress line: "The plain model", "The model with the effect", "Random neurons, seed 0"."""
    return {BASELINE: "The plain model", EFFECT: "The model with the effect"}.get(
        name, name.replace("control seed", "Random neurons, seed"))


def is_plain_control(lm: LoadedModel, run: Sequence[Effect], patches: Sequence[Patch]) -> bool:
    """Whether a control run is the plain model: all its effects are patches that change no weight (random
    neurons a donor never changed)."""
    return len(patches) == len(run) and all(changes_nothing(lm, p) for p in patches)


@contextmanager
def applied(lm: LoadedModel, effects: Sequence[Effect], patches: Sequence[Patch],
            reference: Sequence[str] = ()) -> Iterator[list[Intervention]]:
    """Write ``patches`` (those of the patch effects, made beforehand) into ``lm`` for the block (reverted
    exactly on exit) and yield the interventions of the other effects, for ``intervene``. Means for
    ``mean`` come from ``reference`` prompts on the patched model."""
    with ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patched(lm, patch))
        yield [mean_ablation(lm, e.neurons, reference) if e.mode == "mean"
               else Intervention(e.neurons, e.mode, e.value if e.mode == "activate" else None, label=e.label)
               for e in effects if e.mode != "patch"]


def _compact(result: dict) -> dict:
    """Rates (with stderr), perplexity per language and utility of an ``evaluate`` result, without examples."""
    keep = ("n", "refusal_rate", "stderr", "ci95")
    langs = {lang: {**{label: {k: block[label][k] for k in keep} for label in ("harmful", "harmless")},
                    "perplexity": block["perplexity"]} for lang, block in result["languages"].items()}
    return {"languages": langs, "utility": {k: result["utility"][k] for k in ("perplexity", "mc_accuracy")}}


def spread(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation, min and max across seeds."""
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": mean, "sd": sd, "min": min(values), "max": max(values)}


def _summary(runs: Sequence[dict]) -> dict:
    """The controls' spread of every figure of ``_compact`` (rates, perplexities, utility)."""
    first = runs[0]
    langs = {lang: {**{label: spread([r["languages"][lang][label]["refusal_rate"] for r in runs])
                       for label in ("harmful", "harmless")},
                    "perplexity": spread([r["languages"][lang]["perplexity"] for r in runs])}
             for lang in first["languages"]}
    return {"languages": langs, "utility": {k: spread([r["utility"][k] for r in runs]) for k in first["utility"]}}


def _change(base: dict, real: dict, controls: dict) -> dict:
    """Refusal-rate differences (points) and relative perplexity changes vs the plain model, for the real
    set and for the controls' mean, and the excess of the real change over the controls'."""
    def rate(b: dict, r: dict, c: dict) -> dict:
        d_real, d_ctrl = r["refusal_rate"] - b["refusal_rate"], c["mean"] - b["refusal_rate"]
        return {"real": d_real, "real_stderr": math.hypot(r["stderr"], b["stderr"]),
                "controls": d_ctrl, "controls_sd": c["sd"], "excess": d_real - d_ctrl}

    def relative(b: float, r: float, c: dict) -> dict:
        return {"real": r / b - 1, "controls": c["mean"] / b - 1, "controls_sd": c["sd"] / b}

    langs = {lang: {**{label: rate(base["languages"][lang][label], real["languages"][lang][label],
                                   controls["languages"][lang][label]) for label in ("harmful", "harmless")},
                    "perplexity": relative(base["languages"][lang]["perplexity"], real["languages"][lang]["perplexity"],
                                           controls["languages"][lang]["perplexity"])}
             for lang in base["languages"]}
    return {"languages": langs,
            "utility": {"perplexity": relative(base["utility"]["perplexity"], real["utility"]["perplexity"],
                                               controls["utility"]["perplexity"]),
                        "mc_accuracy": {"real": real["utility"]["mc_accuracy"] - base["utility"]["mc_accuracy"],
                                        "controls": controls["utility"]["mc_accuracy"]["mean"]
                                        - base["utility"]["mc_accuracy"]}}}


def evaluate_effects(lm: LoadedModel, prompts: PromptSet, langs: Sequence[str], effects: Sequence[Effect],
                     seeds: Sequence[int] = (0, 1, 2), reference: Sequence[str] = (), max_new_tokens: int = 48,
                     batch_size: int = 8, progress: Progress = no_progress,
                     on_reply: Callable[[dict], None] | None = None, mc_questions: int | None = None,
                     baseline: dict | None = None, on_run: Callable[[str, dict], None] | None = None) -> dict:
    """``evaluate`` with ``effects`` applied and, given ``seeds``, the same effects on random neurons.

    Returns the ``evaluate`` dict of the real effect, plus (when there are seeds) ``baseline`` (the plain
    model), ``controls`` (per seed rates with stderr and perplexity, and their spread across seeds) and
    ``effect`` (change vs the plain model of the real set and of the controls' mean). ``reference``: the
    harmless prompts that ``mean`` effects average over. ``on_reply`` gets every judged reply (see
    ``refusal_rates``) with the run's name as ``variant``. The model is bit-identical afterwards."""
    runs = planned_runs(lm, effects, seeds)
    results, baseline_replies = [], []
    for i, (name, run) in enumerate(runs):
        part = span(progress, i / len(runs), (i + 1) / len(runs), f"{run_title(name)} ({i + 1}/{len(runs)}): ")
        def record(row: dict, name=name) -> None:
            if name == BASELINE:
                baseline_replies.append(row)
            on_reply({"variant": name, **row})
        part(0.0, "preparing")
        patches = [e.make_patch(e.neurons) for e in run if e.mode == "patch"]
        is_control = i > 1  # runs: baseline, effect, then the controls
        if name == BASELINE and baseline is not None:
            results.append(baseline)
        elif is_control and is_plain_control(lm, run, patches):
            results.append(results[0])  # it changes no weight: the plain model's result and replies
            for row in baseline_replies:
                record(row)
        else:
            with applied(lm, run, patches, reference) as interventions:
                results.append(evaluate(lm, prompts, langs, interventions, max_new_tokens, batch_size, progress=part,
                                        on_reply=record if on_reply else None, mc_questions=mc_questions))
        if on_run:
            on_run(name, results[-1])
    progress(1.0, "Evaluation done")
    return with_controls(results, effects, seeds, _compact, _summary, _change)


def with_controls(results: Sequence[dict], effects: Sequence[Effect], seeds: Sequence[int], compact: Callable,
                  summarise: Callable, change: Callable) -> dict:
    """The document of ``planned_runs``' results (the plain model, the effect, then one control per seed): the
    effect's result with ``baseline``, ``controls`` and ``effect`` blocks when there are controls, in a function's
    own ``compact`` figures, their ``summarise`` over seeds and the ``change`` of the effect against both."""
    out = {**results[1 if seeds else 0], "effects": [e.describe() for e in effects]}
    if seeds:
        baseline, real = compact(results[0]), compact(results[1])
        per_seed = [{"seed": s, **compact(r)} for s, r in zip(seeds, results[2:])]
        summary = summarise(per_seed)
        out.update(baseline=baseline, controls={"seeds": list(seeds), "runs": per_seed, "summary": summary},
                   effect=change(baseline, real, summary))
    return out
