"""Train chosen neurons to prefer neither fill of a bias item (a bias donor, CNT's third application), or,
the pair the other way round, to prefer the stereotype (a more biased target, whose bias deletion by transfer
from the untrained model undoes).

Each item is read as in ``evaluation.bias``: its stereotype and anti-stereotype sentences as plain text, each
scored by the mean log-probability per token from the blank on (``scored_span``). The loss of a batch is

    mean over items of goal(score(stereotype) − score(anti-stereotype))         (the preference term)
  + ``keep_weight`` · mean over positions of KL(original ‖ trained)               (language modelling kept)

with goal(d) = d² for ``goal="neutral"`` (prefer neither: a donor) and goal(d) = softplus((margin − d) / 0.1) · 0.1
for ``goal="stereotype"`` (prefer the stereotype by about ``margin`` nats per token, a smooth hinge that stops
pushing past the margin: a more biased target),

where the KL is taken at every next-token position of the item's three sentences (the unrelated one too, so
that both meaningful fills stay above it: the LM score), against the untrained model's next-token distribution
coarsened to its top ``top_k`` tokens and one bucket for the rest (exactly 0 before training), computed once.

Only ``neurons`` are trained: gradients are masked to their weight slices (``finetune.training_only``) and
AdamW runs without weight decay, so every other weight stays bit-identical. The trained weights come back
as a patch and the model is restored as loaded, bit for bit.

``gradient_scores`` ranks neurons by how much their weights can move the preference term (the norm of its
gradient over each neuron's slices): a way to choose a small set to train.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from neuronlab.evaluation.bias import BiasItem, Span, forward_rows, item_spans, preferences, row_scores
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.patches import Patch, extract_patch, fingerprint
from neuronlab.neurons.scores import Scores
from neuronlab.neurons.sets import NeuronSet
from neuronlab.progress import Progress, no_progress
from neuronlab.training.finetune import shuffled_batches, training_only

RECIPE = ("masked fine-tuning: mean (score(stereotype) - score(anti-stereotype))^2 + keep_weight * KL(original || "
          "trained) on the items' three sentences; AdamW, no weight decay")
RECIPES = {"neutral": RECIPE,
           "stereotype": ("masked fine-tuning: mean 0.1 * softplus((margin - (score(stereotype) - "
                          "score(anti-stereotype))) / 0.1) + keep_weight * KL(original || trained) on the items' three "
                          "sentences; AdamW, no weight decay")}
GOALS = tuple(RECIPES)
SMOOTH = 0.1  # nats per token: the width of the stereotype goal's smooth hinge


@dataclass(frozen=True)
class DebiasConfig:
    steps: int = 60
    lr: float = 1e-4
    batch_size: int = 8  # items per step (three sentences each)
    seed: int = 0
    keep_weight: float = 1.0  # weight of the KL to the untrained model
    top_k: int = 64  # tokens kept of each untrained next-token distribution
    goal: str = "neutral"  # "neutral": prefer neither fill (a donor) | "stereotype": prefer the stereotype
    margin: float = 0.5  # goal "stereotype": the preference (nats per token) past which it stops pushing

    def __post_init__(self):
        if self.goal not in GOALS:
            raise ValueError(f"goal: one of {', '.join(GOALS)}, not {self.goal!r}")


def goal_loss(pref: torch.Tensor, config: DebiasConfig) -> torch.Tensor:
    """The preference term (module doc) of [b] preferences score(stereotype) − score(anti-stereotype)."""
    if config.goal == "stereotype":
        return (SMOOTH * torch.nn.functional.softplus((config.margin - pref) / SMOOTH)).mean()
    return pref.pow(2).mean()


def preference_term(lm: LoadedModel, spans: Sequence[tuple[Span, Span, Span]],
                    config: DebiasConfig = DebiasConfig()) -> torch.Tensor:
    """The preference term of ``config.goal`` (module doc) over ``spans``, differentiable."""
    return goal_loss(preferences(lm, spans), config)


def squared_preference(lm: LoadedModel, spans: Sequence[tuple[Span, Span, Span]]) -> torch.Tensor:
    """Mean over items of (score(stereotype) − score(anti-stereotype))², differentiable."""
    return preference_term(lm, spans, DebiasConfig(goal="neutral"))


def mean_preference(lm: LoadedModel, spans: Sequence[tuple[Span, Span, Span]]) -> float:
    """Mean over items of score(stereotype) − score(anti-stereotype) (nats per token), without gradients."""
    with torch.no_grad():
        return preferences(lm, spans).mean().item()


def _targets(lm: LoadedModel, spans: Sequence[tuple[Span, Span, Span]], config: DebiasConfig) -> list:
    """Per item and sentence, the untrained model's top-k (ids, log-probs) [n, top_k] at its n next-token positions."""
    out = []
    with torch.no_grad():
        for at in range(0, len(spans), config.batch_size):
            rows = [s for item in spans[at:at + config.batch_size] for s in item]
            logp, _, valid = forward_rows(lm, rows)
            top = logp.topk(min(config.top_k, logp.shape[-1]), dim=-1)  # [b, w-1, top_k]
            sentences = [(top.indices[i, valid[i]].clone(), top.values[i, valid[i]].clone()) for i in range(len(rows))]
            out += [sentences[i:i + 3] for i in range(0, len(sentences), 3)]
    return out


def _tail(logp: torch.Tensor) -> torch.Tensor:
    """[n] log of the probability outside the top-k tokens whose log-probs ``logp`` [n, top_k] holds."""
    return torch.log1p(-logp.logsumexp(-1).exp().clamp(max=1 - 1e-6))


def debias_loss(lm: LoadedModel, spans: Sequence[tuple[Span, Span, Span]], targets: Sequence, config: DebiasConfig
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, preference term, KL) of a batch of items (module doc)."""
    rows = [s for item in spans for s in item]
    logp, ids, valid = forward_rows(lm, rows)
    scores = row_scores(logp, ids, rows).view(len(spans), 3)
    pref2 = goal_loss(scores[:, 0] - scores[:, 1], config)
    kls = []
    for i, (top_ids, p) in enumerate(t for item in targets for t in item):
        q = logp[i, valid[i]].gather(-1, top_ids)  # [n, top_k]
        kls.append((p.exp() * (p - q)).sum(-1) + _tail(p).exp() * (_tail(p) - _tail(q)))
    kl = torch.cat(kls).mean()
    return pref2 + config.keep_weight * kl, pref2, kl


def train_debiased(lm: LoadedModel, items: Sequence[BiasItem], neurons: NeuronSet,
                   config: DebiasConfig = DebiasConfig(), progress: Progress = no_progress, **meta) -> Patch:
    """Train only ``neurons`` of ``lm`` to prefer neither fill of ``items`` (or, ``config.goal="stereotype"``, the
    stereotype; module doc); return their trained weights as a patch for ``lm`` (which ends as loaded, bit for
    bit)."""
    if not items:
        raise ValueError("no bias items to train on")
    spans = item_spans(lm, items)
    original_fp = fingerprint(lm.model)
    targets = _targets(lm, spans, config)
    batches = shuffled_batches(list(range(len(items))), min(config.batch_size, len(items)), random.Random(config.seed))
    term = "preference²" if config.goal == "neutral" else "stereotype hinge"
    with training_only(lm, neurons, config.lr, config.seed) as optim:
        for step in range(config.steps):
            chosen = next(batches)
            loss, pref2, kl = debias_loss(lm, [spans[i] for i in chosen], [targets[i] for i in chosen], config)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            progress((step + 1) / config.steps, f"step {step + 1}/{config.steps}: {term} {pref2.item():.4f}, "
                                                f"KL {kl.item():.4f}")
        goal = {"goal": config.goal, **({"margin": config.margin} if config.goal == "stereotype" else {})}
        return extract_patch(lm, neurons, kind="finetune", target_fingerprint=original_fp, method="debias",
                             recipe=RECIPES[config.goal], **goal, steps=config.steps, lr=config.lr, seed=config.seed,
                             batch_size=config.batch_size, keep_weight=config.keep_weight, top_k=config.top_k,
                             items=len(items), langs=sorted({it.lang for it in items}), **meta)


def gradient_scores(lm: LoadedModel, items: Sequence[BiasItem], sites=("mlp",), batch_size: int = 8,
                    config: DebiasConfig = DebiasConfig()) -> Scores:
    """Scores {site: [L, N]}: the norm, over each neuron's weight slices, of the gradient of the preference
    term of ``config.goal`` (default: the squared preference; summed over batches of ``items``): how strongly
    each neuron's weights can move it."""
    spans = item_spans(lm, items)
    params = {}
    for site in sites:
        for layer in range(lm.arch.n_layers):
            for ws in lm.arch.sites[site].weights:
                params[(site, layer, ws)] = lm.arch.layer(lm.model, layer).get_parameter(ws.param)
    frozen = {p: p.requires_grad for p in lm.model.parameters()}
    grads = {}
    try:
        for p in lm.model.parameters():
            p.requires_grad_(False)
        unique = list({id(p): p for p in params.values()}.values())
        for p in unique:
            p.requires_grad_(True)
        for at in range(0, len(spans), batch_size):
            found = torch.autograd.grad(preference_term(lm, spans[at:at + batch_size], config), unique)
            for p, g in zip(unique, found):
                grads[id(p)] = grads.get(id(p), 0) + g.detach().float()
    finally:
        for p, flag in frozen.items():
            p.requires_grad_(flag)
    out = {}
    for site in sites:
        s = lm.arch.sites[site]
        rows = []
        for layer in range(lm.arch.n_layers):
            total = torch.zeros(s.size)
            for ws in s.weights:
                g = grads[id(params[(site, layer, ws)])].narrow(ws.dim, ws.offset, s.size).pow(2).cpu()
                total += g.sum(dim=[d for d in range(g.dim()) if d != ws.dim]) if g.dim() > 1 else g
            rows.append(total.sqrt())
        out[site] = torch.stack(rows)  # [L, N]
    return Scores(out)
