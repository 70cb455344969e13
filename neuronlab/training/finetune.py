"""Fine-tune only chosen neurons (SS-Neuron Expansion, arXiv 2602.01283; also how demo donors are made).

Gradients of every touched parameter are multiplied by a 0/1 mask that keeps only the neurons' weight
slices; with AdamW and no weight decay a masked entry's update is exactly 0, so every other weight stays
bit-identical. The result is returned as a patch and the model is restored, so a shared model is left
as it was.

An example whose reply is the model's own (``Example.own``) can be learned two ways
(``TrainConfig.own_target``): token by token (``reply``), or, past its opening tokens, as the untrained
model's next-token distribution (``distribution``: its top-k, renormalised), which keeps the model's
behaviour there without sharpening it toward its greedy choice (sharpening raises perplexity).

Openings to avoid (``avoid``: e.g. harmless prompts paired with a refusal) add an unlikelihood term,
-log(1 - P(the reply's first ``opening_tokens`` tokens)), weighted ``avoid_weight``, on a batch of
``avoid_batch`` of them each step: it pushes the refuse-or-answer decision itself, where learning a
harmless prompt's own reply only pushes it indirectly.
"""
from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch

from neuronlab.data.prompts import PromptSet
from neuronlab.evaluation.judge import judge
from neuronlab.models.chat import chat_ids, text_ids
from neuronlab.models.generation import Sampling, generate_batch
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.patches import Patch, apply_patch, extract_patch, fingerprint
from neuronlab.neurons.sets import NeuronSet
from neuronlab.progress import Progress, no_progress


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 40
    lr: float = 1e-3
    batch_size: int = 8
    seed: int = 0
    max_tokens: int = 128  # per example, prompt and reply together
    eval_every: int = 10  # steps between early-stopping checks (when a check is given)
    opening_weight: float = 1.0  # loss weight of each reply's first ``opening_tokens`` tokens (the decision)
    opening_tokens: int = 3
    own_target: str = "reply"  # how own replies are learned past the opening: "reply" | "distribution"
    top_k: int = 256  # tokens kept of each untrained next-token distribution ("distribution")
    avoid_weight: float = 0.0  # weight of the unlikelihood of the openings to avoid (0: off)
    avoid_batch: int = 4  # openings to avoid per step

    def __post_init__(self):
        if self.own_target not in OWN_TARGETS:
            raise ValueError(f"unknown own_target {self.own_target!r}; use one of {', '.join(OWN_TARGETS)}")


OWN_TARGETS = ("reply", "distribution")


class Example(NamedTuple):
    """A (prompt, reply) training pair; ``own``: the reply is the model's own (see ``TrainConfig.own_target``)."""

    prompt: str
    reply: str
    own: bool = False


def own_replies(lm: LoadedModel, prompts: PromptSet, max_new_tokens: int = 48,
                batch_size: int = 8) -> list[Example]:
    """(prompt, the model's own greedy reply) for harmless ``prompts``: training targets that keep harmless
    behaviour as it was. A reply the judge calls a refusal (in its prompt's language) is left out, or a
    model that already refuses some harmless prompts would be taught its own false refusals."""
    replies = generate_batch(lm, prompts.texts, sampling=Sampling(max_new_tokens=max_new_tokens), batch_size=batch_size)
    return [Example(p.text, r, own=True) for p, r in zip(prompts, replies) if not judge(r, p.lang).refusal]


def refusal_pairs(prompts: PromptSet, choices: Callable[[str], Sequence[str]], seed: int = 0) -> list[tuple[str, str]]:
    """Each prompt paired with a seeded pick from ``choices(its language)``: refusal openings it should not
    give (``finetune_neurons``' ``avoid``)."""
    rng = random.Random(seed)
    return [(p.text, rng.choice(choices(p.lang))) for p in prompts]


class Soft(NamedTuple):
    """Distribution targets of a batch: at positions ``where`` [batch, k], the ``ids`` [batch, k, top_k]
    with probabilities ``probs`` [batch, k, top_k] replace the single target token."""

    ids: torch.Tensor
    probs: torch.Tensor
    where: torch.Tensor


def reply_loss(logits: torch.Tensor, targets: torch.Tensor, config: TrainConfig, soft: Soft | None = None) -> torch.Tensor:
    """Next-token cross-entropy averaged per example, then over the batch, so that a short refusal
    counts as much as a long answer; the reply's opening tokens weigh ``opening_weight`` times more.
    With ``soft``, the cross-entropy against a distribution where it says.

    logits [batch, k, vocab] at k positions (in order); targets [batch, k]: the token each position
    predicts, -100 outside the reply."""
    valid = targets != -100  # [batch, k]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets.clamp(min=0), reduction="none")
    if soft is not None:
        soft_nll = -(soft.probs * logits.log_softmax(-1).gather(-1, soft.ids)).sum(-1)  # [batch, k]
        nll = torch.where(soft.where, soft_nll, nll)
    position = valid.cumsum(1) - 1  # index of each target within its reply
    weight = valid * (1 + (config.opening_weight - 1) * (position < config.opening_tokens))
    return ((nll * weight).sum(1) / weight.sum(1).clamp(min=1)).mean()


def opening_unlikelihood(logits: torch.Tensor, targets: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Mean over examples of -log(1 - P(the reply's first ``opening_tokens`` tokens)): low when the model
    would not open its reply that way. logits [batch, k, vocab], targets [batch, k] as in ``reply_loss``."""
    valid = targets != -100  # [batch, k]
    logp = logits.log_softmax(-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # [batch, k]
    opening = valid & (valid.cumsum(1) <= config.opening_tokens)
    p_opening = (logp * opening).sum(1).exp()  # [batch]
    return -torch.log1p(-p_opening.clamp(max=1 - 1e-6)).mean()


def reply_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [batch, k, vocab], targets [batch, k]) at the k positions that predict a reply token in some
    row: the vocabulary projection is skipped elsewhere (it dominates the cost of small, large-vocabulary models)."""
    labels = batch["labels"]  # [batch, seq]
    keep = (labels[:, 1:] != -100).any(0).nonzero().squeeze(1)  # [k] positions t with a reply token at t+1
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        logits = model(**inputs, logits_to_keep=keep).logits
    else:
        logits = model(**inputs).logits[:, keep]
    return logits, labels[:, keep + 1]


def neuron_masks(lm: LoadedModel, neurons: NeuronSet) -> dict[torch.nn.Parameter, torch.Tensor]:
    """{parameter: 0/1 mask of its entries that belong to ``neurons``}."""
    masks: dict[torch.nn.Parameter, torch.Tensor] = {}
    for (layer, site), idx in neurons.validate(lm.arch).grouped().items():
        block = lm.arch.layer(lm.model, layer)
        for ws in lm.arch.sites[site].weights:
            param = block.get_parameter(ws.param)
            mask = masks.setdefault(param, torch.zeros_like(param))
            mask.index_fill_(ws.dim, torch.as_tensor(idx + ws.offset, device=param.device), 1.0)
    return masks


def _batch(lm: LoadedModel, examples: Sequence[Example | tuple[str, str]], max_tokens: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / labels [batch, seq]; labels cover the reply only."""
    tok, rows = lm.tokenizer, []
    for prompt, reply, *_ in examples:
        context = chat_ids(lm, prompt)
        answer = text_ids(lm, reply) + [tok.eos_token_id]
        ids = (context + answer)[:max_tokens]
        rows.append((ids, [-100] * len(context) + answer))
    width = max(len(ids) for ids, _ in rows)
    pad = tok.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
    labels = torch.tensor([lab[:len(ids)] + [-100] * (width - len(ids)) for ids, lab in rows])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
    return {k: v.to(lm.device) for k, v in (("input_ids", input_ids), ("attention_mask", mask), ("labels", labels))}


def _distributions(lm: LoadedModel, examples: Sequence[Example], config: TrainConfig) -> dict[int, tuple]:
    """{index of an own example: (ids, probs) [n, top_k]}: the current model's top-k next-token
    distribution (renormalised) at each of the n positions that predict a reply token."""
    own = [i for i, e in enumerate(examples) if e.own]
    out = {}
    with torch.inference_mode():
        for start in range(0, len(own), config.batch_size):
            chunk = own[start:start + config.batch_size]
            logits, targets = reply_logits(lm.model, _batch(lm, [examples[i] for i in chunk], config.max_tokens))
            top = logits.float().topk(min(config.top_k, logits.shape[-1]), dim=-1)  # [batch, k, top_k]
            probs = top.values.softmax(-1)
            for row, i in enumerate(chunk):
                at = targets[row] != -100
                out[i] = (top.indices[row, at], probs[row, at])
    return out


def _soft(batch_examples: Sequence[int], targets: torch.Tensor, distributions: dict[int, tuple],
          config: TrainConfig) -> Soft | None:
    """The distribution targets of a batch of example indices, past each own reply's opening tokens."""
    present = [i for i in batch_examples if i in distributions]
    if not present:
        return None
    (b, k), top_k = targets.shape, distributions[present[0]][0].shape[-1]
    ids = torch.zeros(b, k, top_k, dtype=torch.long, device=targets.device)
    probs = torch.zeros(b, k, top_k, device=targets.device)
    where = torch.zeros(b, k, dtype=torch.bool, device=targets.device)
    for row, i in enumerate(batch_examples):
        if i in distributions:
            at = (targets[row] != -100).nonzero().squeeze(1)  # [n] positions of this reply, in order
            ids[row, at], probs[row, at] = distributions[i]
            where[row, at[config.opening_tokens:]] = True
    return Soft(ids, probs, where)


def shuffled_batches(examples: list, size: int, rng: random.Random) -> Iterator[list]:
    """Batches of ``size`` from a fresh shuffle of ``examples`` each epoch, forever."""
    while True:
        order = rng.sample(examples, len(examples))
        for start in range(0, len(order) - size + 1 if len(order) >= size else 1, size):
            yield order[start:start + size]


def finetune_neurons(lm: LoadedModel, neurons: NeuronSet, examples: Sequence[Example | tuple[str, str]],
                     config: TrainConfig = TrainConfig(), check: Callable[[LoadedModel], bool] | None = None,
                     progress: Progress = no_progress, avoid: Sequence[tuple[str, str]] = (), **meta) -> Patch:
    """Train only ``neurons`` on (prompt, reply) pairs or ``Example``s; return their new weights as a patch
    for ``lm``. ``avoid``: (prompt, reply) pairs whose reply openings are unlearned (``avoid_weight``).

    ``check(lm)`` runs every ``eval_every`` steps and stops training when it returns True (early stop)."""
    examples = [Example(*e) for e in examples]
    original_fp = fingerprint(lm.model)
    distributions = _distributions(lm, examples, config) if config.own_target == "distribution" else {}
    batches = shuffled_batches(list(range(len(examples))), config.batch_size, random.Random(config.seed))
    avoiding = list(avoid) if config.avoid_weight > 0 else []
    avoid_batches = shuffled_batches(avoiding, config.avoid_batch, random.Random(config.seed + 1))
    steps_run = 0
    with training_only(lm, neurons, config.lr, config.seed) as optim:
        for step in range(config.steps):
            chosen = next(batches)
            logits, targets = reply_logits(lm.model, _batch(lm, [examples[i] for i in chosen], config.max_tokens))
            loss = reply_loss(logits.float(), targets, config, _soft(chosen, targets, distributions, config))
            if avoiding:
                logits, targets = reply_logits(lm.model, _batch(lm, next(avoid_batches), config.max_tokens))
                loss = loss + config.avoid_weight * opening_unlikelihood(logits.float(), targets, config)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            steps_run = step + 1
            progress(steps_run / config.steps, f"step {steps_run}/{config.steps}, loss {loss.item():.3f}")
            if check is not None and steps_run % config.eval_every == 0:
                lm.model.eval()
                if check(lm):
                    break
                lm.model.train()
        return extract_patch(lm, neurons, kind="finetune", target_fingerprint=original_fp, method="masked-finetune",
                             steps=steps_run, lr=config.lr, seed=config.seed, examples=len(examples),
                             opening_weight=config.opening_weight, own_target=config.own_target,
                             avoid_weight=config.avoid_weight if avoiding else 0.0, avoided=len(avoiding), **meta)


@contextmanager
def training_only(lm: LoadedModel, neurons: NeuronSet, lr: float, seed: int) -> Iterator[torch.optim.Optimizer]:
    """For the block: only ``neurons``' weight slices train (every other parameter frozen, gradients masked to
    the slices), the model in train mode, torch's RNG seeded with ``seed``; yields their AdamW optimiser. When
    the block ends, errors and stops included, the weights (bit for bit), grad flags and eval mode are back."""
    undo = extract_patch(lm, neurons)
    masks = neuron_masks(lm, neurons)
    frozen = {p: p.requires_grad for p in lm.model.parameters()}
    handles = []
    try:
        for p in lm.model.parameters():
            p.requires_grad_(p in masks)
        handles = [p.register_hook(lambda g, m=m: g * m) for p, m in masks.items()]
        lm.model.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield torch.optim.AdamW(list(masks), lr=lr, weight_decay=0.0)
    finally:
        for h in handles:
            h.remove()
        for p, flag in frozen.items():
            p.requires_grad_(flag)
        lm.model.eval()
        apply_patch(lm, undo, check_fingerprint=False)
