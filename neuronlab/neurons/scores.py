"""Scores: one number per neuron, per site a [layers, neurons] tensor, and the two ways to turn them into
a NeuronSet.

A ``Scores`` reads like the ``{site: tensor}`` dict it wraps (``scores["mlp"]`` is [layers, neurons]);
higher means more important. Scans (importance and contrast per language and label), the scoring
functions and the transfer rankings all return one. The selectors:
- ``top_per_layer(fraction)``: in every layer of every site, the top ``fraction`` of that site's neurons,
  k = max(1, round(fraction · neurons)); NaN is never chosen and a row of n < k finite scores gives its
  top n. This is S(D) of a safety scan (per-layer top p%).
- ``top(count=None, fraction=None, within=None)``: the ``count`` highest-scoring neurons over all layers
  and sites together, or ``fraction`` of the candidates (max(1, round(fraction · candidates)); the
  candidates are every scored neuron, or ``within``), optionally only among ``within``. Equal scores go to
  the earlier site (in the mapping's order), then the lower layer, then the lower index; NaN ranks last.
  This is a transfer's "move the top-k ranked neurons".
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from neuronlab.errors import NeuronLabError
from neuronlab.neurons.sets import NeuronSet


class ScoresError(NeuronLabError):
    """Scores that are not per-site [layers, neurons] tensors, or a selection that asks for no neurons."""


@dataclass(frozen=True, eq=False)
class Scores(Mapping[str, torch.Tensor]):
    """Per-site neuron scores ``{site: [layers, neurons]}``, every site with the same number of layers."""

    by_site: Mapping[str, torch.Tensor]  # {site: [layers, neurons]}; neurons may differ between sites

    def __post_init__(self) -> None:
        tensors = dict(self.by_site)
        for site, t in tensors.items():
            if not isinstance(site, str):
                raise ScoresError(f"scores are keyed by site name, got {site!r}")
            if not isinstance(t, torch.Tensor) or t.dim() != 2:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ScoresError(f"scores of site {site!r} must be a [layers, neurons] tensor, got {shape}")
        layers = {site: t.shape[0] for site, t in tensors.items()}
        if len(set(layers.values())) > 1:
            raise ScoresError(f"every site needs scores for the same number of layers, got {layers}")
        object.__setattr__(self, "by_site", tensors)

    def __getitem__(self, site: str) -> torch.Tensor:
        return self.by_site[site]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_site)

    def __len__(self) -> int:
        return len(self.by_site)

    def __eq__(self, other) -> bool:
        """Equal sites and bit-equal tensors (a plain ``{site: tensor}`` mapping compares too)."""
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.keys() == other.keys() and all(torch.equal(t, other[s]) for s, t in self.items())

    __hash__ = None  # mutable tensors inside, like the dict it wraps

    def __repr__(self) -> str:
        shapes = ", ".join(f"{site}=[{t.shape[0]}, {t.shape[1]}]" for site, t in self.items())
        return f"Scores({shapes})"

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(self.by_site)

    @property
    def layers(self) -> int:
        """The number of layers (0 for scores of no site)."""
        return next(iter(self.by_site.values())).shape[0] if self.by_site else 0

    @property
    def size(self) -> int:
        """The number of neurons scored, all sites and layers together."""
        return sum(t.numel() for t in self.by_site.values())

    def top_per_layer(self, fraction: float) -> NeuronSet:
        """Per layer and site, the top ``fraction`` of the site's neurons by score (NaN never chosen)."""
        if not 0 < fraction <= 1:
            raise ScoresError(f"the share per layer is a fraction in (0, 1], got {fraction}")
        chosen = []
        for site, t in self.items():
            k = max(1, round(fraction * t.shape[1]))
            for layer, row in enumerate(t):  # [neurons]
                n = min(k, int(torch.isfinite(row).sum()))
                if n:
                    best = torch.nan_to_num(row, nan=float("-inf")).topk(n).indices
                    chosen += [(layer, site, i) for i in best.tolist()]
        return NeuronSet(chosen)

    def top(self, count: int | None = None, fraction: float | None = None,
            within: NeuronSet | None = None) -> NeuronSet:
        """The ``count`` (or ``fraction`` of the candidates) highest-scoring neurons over all layers and
        sites, optionally only among ``within``; neither: every candidate. See the module docstring for ties."""
        if count is not None and fraction is not None:
            raise ScoresError("give count or fraction, not both")
        if count is not None and count < 0:
            raise ScoresError(f"count is a number of neurons, got {count}")
        if fraction is not None and not 0 < fraction <= 1:
            raise ScoresError(f"fraction is a share of the candidates in (0, 1], got {fraction}")
        groups = within.grouped() if within is not None else {}  # {(layer, site): indices}
        where, values = [], []  # per site: (site number, layer [m], index [m]), scores [m]
        for j, (site, t) in enumerate(self.items()):
            if within is None:
                flat = torch.arange(t.numel())
            else:
                mask = torch.zeros(t.shape, dtype=torch.bool)  # [layers, neurons]
                for (layer, s), idx in groups.items():
                    if s == site and 0 <= layer < t.shape[0]:
                        mask[layer, torch.as_tensor(idx[(idx >= 0) & (idx < t.shape[1])], dtype=torch.long)] = True
                flat = mask.flatten().nonzero()[:, 0]  # layer-major: the tie order
            where.append(torch.stack([torch.full_like(flat, j), flat // t.shape[1], flat % t.shape[1]]))
            values.append(t.detach().flatten().cpu().double()[flat] + 0.0)  # + 0.0: -0.0 ties with 0.0
        score = torch.cat(values) if values else torch.zeros(0, dtype=torch.float64)  # [candidates]
        if count is None:
            candidates = self.size if within is None else len(within)
            count = len(score) if fraction is None else max(1, round(fraction * candidates))
        nan = score.isnan()
        order = torch.sort(score.masked_fill(nan, float("-inf")), descending=True, stable=True).indices
        order = order[torch.sort(nan[order].to(torch.uint8), stable=True).indices][:count]  # NaN last
        sites = self.sites
        chosen = torch.cat(where, 1)[:, order] if where else torch.zeros(3, 0, dtype=torch.long)  # [3, count]
        return NeuronSet((layer, sites[j], i) for j, layer, i in chosen.T.tolist())
