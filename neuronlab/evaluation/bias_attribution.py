"""Which neurons carry a model's stereotype preference: a first-order estimate, for every neuron at once, of how
switching it off (its activation zeroed at every position) would change the mean stereotype preference
(``evaluation.bias.preferences``: score(stereotype) − score(anti-stereotype), nats per token) over bias items.

Zeroing neuron N changes the preference by about −Σ_positions a_N · ∂pref/∂a_N, so one forward and one backward
pass per batch of items score them all. Negative: switching the neuron off lowers the preference, so it carries
the stereotype. Chosen on the scan split, these neurons are what ``training.bias_donor`` turns down.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from neuronlab.analysis.scoring import module_hooks
from neuronlab.evaluation.bias import BiasItem, item_spans, preferences
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import scoped_hooks
from neuronlab.neurons.scores import Scores
from neuronlab.progress import Progress, no_progress


def preference_attribution(lm: LoadedModel, items: Sequence[BiasItem], sites: Sequence[str] = ("mlp",),
                           batch_size: int = 8, progress: Progress = no_progress) -> Scores:
    """Scores {site: [L, N]}: the estimated change of the mean preference over ``items`` when each neuron is off."""
    if not items:
        raise ValueError("no bias items to attribute")
    arch = lm.arch
    totals = {s: torch.zeros(arch.n_layers, arch.sites[s].size, dtype=torch.float64) for s in sites}
    spans = item_spans(lm, items)
    for at in range(0, len(spans), batch_size):
        captured: dict[tuple[int, str], torch.Tensor] = {}

        def keep(layer: int, path: str, x: torch.Tensor) -> None:  # x [2·batch, seq, width]
            captured[(layer, path)] = x

        with scoped_hooks(module_hooks(lm, sites, keep)), torch.enable_grad():
            total = preferences(lm, spans[at:at + batch_size]).sum()
            keys = list(captured)
            grads = torch.autograd.grad(total, [captured[k] for k in keys])
        for (layer, path), g in zip(keys, grads):
            change = -(captured[(layer, path)].detach() * g).sum((0, 1)).double().cpu()  # [width]
            for site in sites:
                s = arch.sites[site]
                if s.module == path:
                    totals[site][layer] += change[s.offset:s.offset + s.size]
        done = min(len(spans), at + batch_size)
        progress(done / len(spans), f"{done} of {len(spans)} bias items attributed")
    return Scores({s: (t / len(spans)).float() for s, t in totals.items()})
