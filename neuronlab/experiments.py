"""Experiments as every front end runs them: the changes a user made (interventions, a weight patch) turned
into effects with their random-neuron controls, and measured on the same held-out prompts. The ``eval`` verb
and the Evaluate page both call these, so the same experiment gives the same names and figures in both.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext

from neuronlab.data.prompts import PromptSet, bundled_prompts
from neuronlab.errors import NeuronLabError
from neuronlab.evaluation.effects import Effect, copy_from, fixed
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import Intervention
from neuronlab.neurons.patches import Patch, patched
from neuronlab.neurons.sets import NeuronSet
from neuronlab.progress import Progress, no_progress, span
from neuronlab.training.expansion import RECIPE, retrainer


def heldout_prompts(langs: Sequence[str], per_label: int | None, prompts: PromptSet | None = None,
                    split: str = "heldout") -> PromptSet:
    """The prompts an evaluation runs on: ``prompts`` (default: the bundled sets) in ``langs`` and ``split``
    ('' for all), the first ``per_label`` requests of each label, the same requests in every language."""
    chosen = prompts.filter(lang=list(langs)) if prompts is not None else bundled_prompts(langs)
    return (chosen.filter(split=split) if split else chosen).parallel_head(per_label)


def intervention_effect(iv: Intervention) -> Effect:
    """The effect of an intervention, rebuildable on other neurons (for controls): suppress or activate."""
    if iv.mode not in ("suppress", "activate"):
        raise NeuronLabError(f"an intervention of mode {iv.mode!r} cannot be redone on random neurons")
    if iv.mode == "activate":
        return Effect("activate", iv.neurons, iv.value, label=iv.label)
    return Effect("suppress", iv.neurons, label=iv.label)


def patch_effect(lm: LoadedModel, patch: Patch, source: LoadedModel | None = None, label: str = "",
                 progress: Progress = no_progress) -> tuple[Effect, str]:
    """The effect of writing ``patch`` into ``lm``, and why it gets no random controls ('' when it does).

    Controls redo the patch on random neurons: a transfer copies them from ``source`` (the model it was taken
    from, unchanged since); an SS-Neuron Expansion patch retrains them with its recorded recipe."""
    if patch.kind == "transfer" and source is not None and source.info.fingerprint == patch.meta.get("source_fingerprint"):
        other, why_not = copy_from(source), ""
    elif patch.meta.get("recipe") == RECIPE:
        other, why_not = retrainer(lm, patch.meta, progress=progress), ""
    elif patch.kind == "transfer":
        other = fixed(patch)
        why_not = (f"the model it was copied from ({patch.meta.get('source', 'unknown')}) is not loaded as it was "
                   "when the patch was made")
    else:
        other, why_not = fixed(patch), "the patch was neither copied from a model nor trained by SS-Neuron Expansion"

    def make(neurons: NeuronSet) -> Patch:
        return patch if neurons == patch.neurons else other(neurons)
    return Effect("patch", patch.neurons, make_patch=make, label=label or f"patch ({patch.kind})"), why_not


def variant_results(lm: LoadedModel, variants: Mapping[str, tuple[list[Intervention], Patch | None]],
                    measure: Callable[[list[Intervention], Progress], dict], progress: Progress = no_progress,
                    on_result: Callable[[dict[str, dict]], None] = lambda done: None) -> dict[str, dict]:
    """{name: ``measure(interventions, progress)``} of ``lm`` under each variant (name: (its interventions, its
    weight patch or None, written in for the variant's run only)), in order; ``on_result`` gets the results so far
    after each."""
    done = {}
    for i, (name, (interventions, weights)) in enumerate(variants.items()):
        part = span(progress, i / len(variants), (i + 1) / len(variants), f"{name} ({i + 1}/{len(variants)}): ")
        with patched(lm, weights) if weights is not None else nullcontext():
            done[name] = measure(interventions, part)
        on_result(dict(done))
    return done
