"""A transfer as every front end makes it (the ``transfer`` verb, the Transfer page, the Tour, ``ship``): rank
the candidate neurons, take the top ones, copy their weights from the model that has the function."""
from __future__ import annotations

from dataclasses import dataclass

from neuronlab.data.bias import BiasSet, bundled_bias
from neuronlab.data.prompts import PromptSet, bundled_prompts
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.patches import Patch
from neuronlab.neurons.scores import Scores
from neuronlab.neurons.sets import NeuronSet
from neuronlab.progress import Progress, no_progress
from neuronlab.transfer.compatibility import require_compatible
from neuronlab.transfer.ranking import function_meta, rank_scores, transfer_patch

# addition: the donor's neurons into the target (it gains the function); deletion: the target's neurons into
# the donor (the donor loses it)
DIRECTIONS = ("add", "delete")


def scan_data(function: str, lang: str, limit: int) -> tuple[PromptSet | BiasSet, PromptSet | BiasSet]:
    """(the function's scan split of ``lang``, its first ``limit`` per label, or for bias ``limit`` items spread
    over the domains): bundled prompts for refusal, bundled bias items for bias. The contrast ranking reads the
    first, the causal ranking and the minimal-subset search the second (they measure it many times)."""
    if function == "bias":
        scan = bundled_bias(lang, split="scan")
        return scan, scan.spread(limit)
    scan = bundled_prompts(lang, split="scan")
    return scan, scan.head(limit)


@dataclass(frozen=True)
class Transfer:
    """The ranking's scores, the neurons chosen from them and the patch that moves them."""

    scores: Scores
    neurons: NeuronSet
    patch: Patch
    direction: str


def make_transfer(donor: LoadedModel, target: LoadedModel, ranking: str = "weight-diff", direction: str = "add",
                  within: NeuronSet | None = None, sites: tuple[str, ...] = ("mlp",), count: int | None = None,
                  fraction: float | None = None, seed: int = 0, prompts: PromptSet | BiasSet | None = None, lang: str = "en",
                  harmless_weight: float = 1.0, check: bool = True, progress: Progress = no_progress,
                  function: str = "refusal") -> Transfer:
    """Rank ``within`` (default: every neuron of ``sites``) by ``ranking`` for ``function`` (see ``rank_scores``;
    ``prompts``: its scan data), take the top ``count`` or ``fraction`` and make the patch for ``direction``.
    ``check``: require compatible models first."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}")
    if check:
        require_compatible(donor, target)
    sites = tuple(within.sites) if within is not None else sites
    scores = rank_scores(ranking, donor, target, sites, seed, prompts, direction == "delete", lang, harmless_weight,
                         progress, function)
    neurons = scores.top(count=count, fraction=fraction, within=within)
    source, dest = (donor, target) if direction == "add" else (target, donor)
    patch = transfer_patch(source, dest, neurons, check=False, direction=direction, ranking=ranking,
                           **function_meta(function))
    return Transfer(scores, neurons, patch, direction)
