"""A bias donor (CNT's third application, issue #18): a model made to prefer the stereotype less by turning down
the MLP neurons that carry its preference, so that moving those neurons into the model as loaded removes bias.

1. ``evaluation.bias_attribution`` estimates, on the scan split of the bias items, how switching each MLP neuron
   off would change the mean stereotype preference; the ``count`` neurons whose switch-off lowers it most are the
   carriers. With ``cost_quantile`` set, only neurons whose first-order effect on the next-token loss of benign
   text is at most that quantile are candidates (neurons the language model leans on are left alone).
2. Their contribution is multiplied by ``scale`` in the weights (``neurons.patches.scaled_patch``: the column of
   down_proj that reads each one), so the donor differs from the model in exactly those neurons.

Nothing is trained: fitting the preference of the scan items (``training.debias``) shrinks its size on those items
without flipping which fill wins on others, while turning down the neurons that carry it moves held-out items too
(measured in docs/methods.md). The choice of neurons is deterministic given the items; there is no seed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from neuronlab.analysis.scoring import module_hooks
from neuronlab.evaluation.bias import BiasItem
from neuronlab.evaluation.bias_attribution import preference_attribution
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import scoped_hooks
from neuronlab.neurons.patches import Patch, scaled_patch
from neuronlab.neurons.scores import Scores
from neuronlab.neurons.sets import NeuronSet
from neuronlab.progress import Progress, no_progress, span

RECIPE = ("the count MLP neurons whose switch-off lowers the mean stereotype preference (score(stereotype) - "
          "score(anti-stereotype)) on the scan items most, by first-order attribution, with their down_proj "
          "columns multiplied by scale")


@dataclass(frozen=True)
class BiasDonorConfig:
    count: int = 115  # neurons turned down (0.25% of demo-target's MLP neurons)
    scale: float = 0.5  # what each one's contribution is multiplied by
    cost_quantile: float | None = None  # candidates: neurons whose benign-text loss effect is at most this quantile

    def __post_init__(self):
        if self.count < 1:
            raise ValueError("count: at least 1 neuron")
        if not 0 <= self.scale < 1:
            raise ValueError(f"scale: from 0 (switched off) to below 1 (as loaded), not {self.scale}")
        if self.cost_quantile is not None and not 0 < self.cost_quantile <= 1:
            raise ValueError(f"cost_quantile: in (0, 1], not {self.cost_quantile}")


def loss_cost(lm: LoadedModel, texts: Sequence[str], max_tokens: int = 256) -> torch.Tensor:
    """[L, N] the size of the first-order change of each MLP neuron's switch-off on the next-token loss of each
    of ``texts``, summed over texts (how much the language model leans on it)."""
    arch, cost = lm.arch, torch.zeros(lm.arch.n_layers, lm.arch.sites["mlp"].size, dtype=torch.float64)
    site = arch.sites["mlp"]
    for text in texts:
        ids = lm.tokenizer(text, return_tensors="pt").input_ids[:, :max_tokens].to(lm.device)
        captured: dict[tuple[int, str], torch.Tensor] = {}

        def keep(layer: int, path: str, x: torch.Tensor) -> None:  # x [1, seq, width]
            captured[(layer, path)] = x

        with scoped_hooks(module_hooks(lm, ["mlp"], keep)), torch.enable_grad():
            loss = lm.model(input_ids=ids, labels=ids).loss
            keys = list(captured)
            grads = torch.autograd.grad(loss, [captured[k] for k in keys])
        for (layer, path), g in zip(keys, grads):
            change = (captured[(layer, path)].detach() * g).sum((0, 1)).abs().double().cpu()  # [width]
            cost[layer] += change[site.offset:site.offset + site.size]
    return cost


def carrier_scores(lm: LoadedModel, items: Sequence[BiasItem], cost_quantile: float | None = None,
                   benign: Sequence[str] = (), progress: Progress = no_progress) -> Scores:
    """Scores {"mlp": [L, N]}: how much switching each neuron off would lower the mean preference over ``items``
    (first order); with ``cost_quantile``, −inf for the neurons whose loss effect on ``benign`` text is above it."""
    lowers = -preference_attribution(lm, items, progress=span(progress, 0, 0.9))["mlp"]  # [L, N] > 0: carries it
    if cost_quantile is not None:
        if not benign:
            raise ValueError("cost_quantile needs benign texts to measure the cost on")
        cost = loss_cost(lm, benign)
        lowers = torch.where(cost <= cost.flatten().quantile(cost_quantile), lowers, -torch.inf)
    progress(1.0, "bias carriers scored")
    return Scores({"mlp": lowers})


def bias_carriers(lm: LoadedModel, items: Sequence[BiasItem], config: BiasDonorConfig,
                  benign: Sequence[str] = (), progress: Progress = no_progress) -> NeuronSet:
    """The ``config.count`` MLP neurons whose switch-off lowers the mean preference over ``items`` most (among
    the low-cost ones on ``benign`` text when ``config.cost_quantile`` is set)."""
    return carrier_scores(lm, items, config.cost_quantile, benign, progress).top(count=config.count)


def make_bias_donor(lm: LoadedModel, items: Sequence[BiasItem], config: BiasDonorConfig = BiasDonorConfig(),
                    benign: Sequence[str] = (), progress: Progress = no_progress, **meta) -> Patch:
    """The bias donor of ``lm`` as a patch over its carriers of the stereotype preference on ``items`` (module
    doc); ``lm`` is left as loaded."""
    if not items:
        raise ValueError("no bias items to choose the neurons on")
    neurons = bias_carriers(lm, items, config, benign, progress)
    return scaled_patch(lm, neurons, config.scale, kind="other", method="bias-donor", recipe=RECIPE,
                        count=config.count, **({"cost_quantile": config.cost_quantile} if config.cost_quantile else {}),
                        items=len(items), langs=sorted({it.lang for it in items}), **meta)
