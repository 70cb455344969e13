"""Cross-Model Neuron Transfer (CNT, arXiv 2603.18449): copy a small set of neurons' weights from a
donor into a target of the same architecture. Function addition copies the donor's neurons into the
target; function deletion copies the target's (unaligned) neurons into the donor.

Rankings of candidate neurons:
- ``weight-diff``: the norm of each neuron's weight change between donor and target (all its slices);
- ``contrast``: |mean activation on harmful − on harmless prompts| in the donor;
- ``random``: a seeded random order (the control).
"""
from __future__ import annotations

import torch

from .compat import require_compatible
from .loading import LoadedModel, fingerprint
from .neurons import NeuronSet
from .patches import Patch, extract_patch
from .prompts import PromptSet, bundled_prompts
from .scoring import activation_scores

RANKINGS = ("weight-diff", "contrast", "random")


def weight_diff_scores(donor: LoadedModel, target: LoadedModel, sites=("mlp",)) -> dict[str, torch.Tensor]:
    """{site: [L, N]} L2 norm of (donor − target) over each neuron's weight slices."""
    out = {}
    for site in sites:
        s = donor.arch.sites[site]
        per_layer = []
        for layer in range(donor.arch.n_layers):
            total = torch.zeros(s.size, dtype=torch.float64)
            for ws in s.weights:
                a, b = (lm.arch.layer(lm.model, layer).get_parameter(ws.param).detach()
                        .narrow(ws.dim, ws.offset, s.size).double().cpu() for lm in (donor, target))
                diff = (a - b).pow(2)
                total += diff.sum(dim=[d for d in range(diff.dim()) if d != ws.dim]) if diff.dim() > 1 else diff
            per_layer.append(total.sqrt().float())
        out[site] = torch.stack(per_layer)  # [L, N]
    return out


def contrast_scores(donor: LoadedModel, harmful: list[str], harmless: list[str], sites=("mlp",),
                    batch_size: int = 8) -> dict[str, torch.Tensor]:
    """{site: [L, N]} |difference of mean last-token activations| on the donor."""
    h = activation_scores(donor, harmful, sites, batch_size)
    b = activation_scores(donor, harmless, sites, batch_size)
    return {s: (h[s]["mean"] - b[s]["mean"]).abs() for s in sites}


def random_scores(lm: LoadedModel, sites=("mlp",), seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {s: torch.rand(lm.arch.n_layers, lm.arch.sites[s].size, generator=gen) for s in sites}


def rank_scores(ranking: str, donor: LoadedModel, target: LoadedModel, sites=("mlp",), seed: int = 0,
                prompts: PromptSet | None = None) -> dict[str, torch.Tensor]:
    """{site: [L, N]} scores of one of ``RANKINGS``; ``contrast`` uses ``prompts`` (default: the bundled
    English scan prompts)."""
    if ranking == "weight-diff":
        return weight_diff_scores(donor, target, sites)
    if ranking == "contrast":
        en = prompts if prompts is not None else bundled_prompts("en", split="scan")
        return contrast_scores(donor, en.filter(label="harmful").texts, en.filter(label="harmless").texts, sites)
    if ranking == "random":
        return random_scores(donor, sites, seed)
    raise ValueError(f"unknown ranking {ranking!r}; use one of {', '.join(RANKINGS)}")


def top_neurons(scores: dict[str, torch.Tensor], count: int | None = None, fraction: float | None = None,
                within: NeuronSet | None = None) -> NeuronSet:
    """The ``count`` (or ``fraction`` of all scored) highest-scoring neurons over all layers and sites,
    optionally only among ``within``."""
    entries = [(float(v), layer, site, int(i)) for site, t in scores.items()
               for layer, row in enumerate(t) for i, v in enumerate(row.tolist())
               if within is None or (layer, site, i) in within]
    if count is None:
        total = sum(t.numel() for t in scores.values()) if within is None else len(within)
        count = len(entries) if fraction is None else max(1, round(fraction * total))
    entries.sort(key=lambda e: -e[0])
    return NeuronSet((layer, site, i) for _, layer, site, i in entries[:count])


def transfer_patch(donor: LoadedModel, target: LoadedModel, neurons: NeuronSet, check: bool = True, **meta) -> Patch:
    """A patch that writes the donor's weights for ``neurons`` into the target (``check=False`` when the
    caller has run ``require_compatible`` already)."""
    if check:
        require_compatible(donor, target)
    return extract_patch(donor, neurons, target=target.spec, target_fingerprint=fingerprint(target.model), **meta)
