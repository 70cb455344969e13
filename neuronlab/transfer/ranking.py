"""Cross-Model Neuron Transfer (CNT, arXiv 2603.18449): copy a small set of neurons' weights from a
donor into a target of the same architecture. Function addition copies the donor's neurons into the
target; function deletion copies the target's (unaligned) neurons into the donor.

Rankings of candidate neurons:
- ``weight-diff``: the norm of each neuron's weight change between donor and target (all its slices);
- ``contrast``: |mean activation on harmful − on harmless prompts| in the donor (bias: on the stereotype
  − on the anti-stereotype sentences);
- ``causal``: a first-order estimate of how much swapping each neuron's weights alone from the source
  into the destination moves the destination's refusal objective (``causal_scores``);
- ``random``: a seeded random order (the control).

The causal objective is R(harmful) − w·R(harmless), R = mean over prompts of ``refusal_score`` (log of
the probability that the reply opens with a refusal). The harmless term (w = 1 by default) ranks
neurons that raise refusal everywhere (false refusals) below those that raise it only on harmful
prompts. For the bias function (``rank_scores(function="bias")``) the objective is −sign(P)·P, P the
destination's mean preference score(stereotype) − score(anti-stereotype) over bias items (``evaluation.bias``;
0 = no preference), in both directions: a bias transfer removes bias from the model the patch is for
(addition: a debiased donor's neurons into the target; deletion: the target's into a more biased donor).
For neuron i of a site, let M be the smallest module holding all its weights (the MLP block
for ``mlp``, the projection itself for attention sites), X the destination's input to M and G the
gradient of the objective at the site module's output. With M run on X once with each model's weights:
- output-port sites (q/k/v rows): Δ_i = Σ_t G_t,i · (y^src_t,i − y^dst_t,i);
- input-port sites (MLP channels, o_proj columns): Δ_i = Σ_t a^src_t,i (W^src G_t)_i − a^dst_t,i (W^dst G_t)_i,
  a the site module's input (for the MLP, act(gate·x)·(up·x) with that model's gate/up rows) and
  W G the gradient of <G, down(a)> with respect to a.
One forward and one backward pass of the destination per batch give every neuron at once; neurons
whose weights are identical in both models score exactly 0.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch.func import functional_call

from neuronlab.analysis.scoring import activation_scores
from neuronlab.data.bias import BiasSet, bundled_bias
from neuronlab.data.prompts import PromptSet, bundled_prompts
from neuronlab.evaluation.bias import BiasItem, item_spans, preference, preferences
from neuronlab.evaluation.metrics import refusal_openings
from neuronlab.models.chat import chat_ids, text_ids
from neuronlab.models.generation import left_padded
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import scoped_hooks
from neuronlab.neurons.patches import Patch, extract_patch, fingerprint
from neuronlab.neurons.scores import Scores
from neuronlab.neurons.sets import NeuronSet
from neuronlab.neurons.sites import Site
from neuronlab.progress import Progress, no_progress
from neuronlab.transfer.compatibility import require_compatible

RANKINGS = ("weight-diff", "contrast", "causal", "random")
TRANSFER_FUNCTIONS = ("refusal", "bias", "match", "openings")  # what a transfer and its ranking take (your own: no search)


def weight_diff_scores(donor: LoadedModel, target: LoadedModel, sites=("mlp",)) -> Scores:
    """Scores {site: [L, N]}: L2 norm of (donor − target) over each neuron's weight slices."""
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
    return Scores(out)


def weight_change_shares(diff: Scores) -> list[float]:
    """Each layer's share of the whole squared weight change in ``diff`` (``weight_diff_scores``), over every
    site; the shares sum to 1 (all 0 when no weight changed)."""
    per_layer = sum(t.double().pow(2).sum(dim=1) for t in diff.values())  # [layers]
    total = float(per_layer.sum())
    return [v / total if total else 0.0 for v in per_layer.tolist()]


def contrast_scores(donor: LoadedModel, harmful: list[str], harmless: list[str], sites=("mlp",),
                    batch_size: int = 8) -> Scores:
    """Scores {site: [L, N]}: |difference of mean last-token activations| on the donor."""
    h = activation_scores(donor, harmful, sites, batch_size)
    b = activation_scores(donor, harmless, sites, batch_size)
    return Scores({s: (h[s]["mean"] - b[s]["mean"]).abs() for s in sites})


def _opening_batch(lm: LoadedModel, prompts: Sequence[str], openings: Sequence[str]) -> tuple[dict, torch.Tensor]:
    """Every chat context followed by every opening, left-padded: input_ids / attention_mask /
    position_ids [prompts*openings, seq], and each opening's length [prompts*openings]."""
    rows = [(chat_ids(lm, p), text_ids(lm, o)) for p in prompts for o in openings]
    return left_padded(lm, [a + b for a, b in rows]), torch.tensor([len(b) for _, b in rows])


def _refusal_objective(lm: LoadedModel, prompts: Sequence[str], lang: str) -> torch.Tensor:
    """Σ over ``prompts`` of refusal_score, differentiable (a scalar)."""
    openings = refusal_openings(lang)
    batch, lengths = _opening_batch(lm, prompts, openings)
    m = int(lengths.max())
    logits = lm.model(**batch, logits_to_keep=m + 1).logits[:, :-1].float()  # [rows, m, vocab]
    targets = batch["input_ids"][:, -m:]  # [rows, m]
    logp = logits.log_softmax(-1).gather(-1, targets[..., None])[..., 0]  # [rows, m]
    keep = torch.arange(m, device=logp.device) >= (m - lengths.to(logp.device))[:, None]  # opening tokens only
    per_row = (logp * keep).sum(-1)  # [rows]
    return per_row.view(len(prompts), len(openings)).logsumexp(-1).sum()


def _scope(site: Site) -> str:
    """The smallest module holding all of a site's weight slices (the MLP block for ``mlp``)."""
    return ".".join(os.path.commonprefix([ws.param.split(".")[:-1] for ws in site.weights]))


def _recorder(store: dict, key):
    """A hook function that keeps the tensor it sees under ``key``."""
    def fn(t: torch.Tensor) -> None:
        store[key] = t
    return fn


def _swap_terms(scope: torch.nn.Module, module: torch.nn.Module, site: Site, params: dict[str, torch.Tensor],
                x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Σ over tokens of each neuron's first-order share of <G, module output> when ``scope`` runs on
    ``x`` with ``params`` [N] (see the module docstring)."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [(module, "input", _recorder(seen, "input")), (module, "output", _recorder(seen, "output"))]
    with scoped_hooks(hooks), torch.set_grad_enabled(site.port == "input"):  # a graph only for W^T G
        functional_call(scope, params, (x,))
    if site.port == "input":
        a = seen["input"]  # [rows, seq, width]
        (grad_a,) = torch.autograd.grad(seen["output"], a, g)  # W^T G [rows, seq, width]
        terms = a.detach() * grad_a
    else:
        terms = g * seen["output"].detach()  # [rows, seq, width]
    return terms[..., site.offset:site.offset + site.size].sum((0, 1)).double()  # [N]


def swap_effects(source: LoadedModel, dest: LoadedModel, objectives: Sequence[Callable[[], torch.Tensor]],
                 sites: Sequence[str] = ("mlp",), what: str = "the objective",
                 progress: Progress = no_progress) -> Scores:
    """Scores {site: [L, N]}: first-order change of Σ ``objectives`` in ``dest`` when one neuron's weights are
    copied from ``source``; each objective runs ``dest`` forward (one batch) and returns a differentiable
    scalar. Neurons whose weights are identical in both models score exactly 0."""
    arch = dest.arch
    totals = {s: torch.zeros(arch.n_layers, arch.sites[s].size, dtype=torch.float64) for s in sites}
    places = [(layer, site, _scope(arch.sites[site])) for layer in range(arch.n_layers) for site in sites]
    for j, objective in enumerate(objectives):
        inputs, outputs = {}, {}  # scope inputs [rows, seq, in], site module outputs [rows, seq, out]
        hooks = []
        for layer, site, scope in places:
            block = arch.layer(dest.model, layer)
            hooks += [(block.get_submodule(scope), "input", _recorder(inputs, (layer, scope))),
                      (block.get_submodule(arch.sites[site].module), "output", _recorder(outputs, (layer, site)))]
        with torch.enable_grad():
            with scoped_hooks(hooks):
                value = objective()
            keys = list(outputs)
            grads = dict(zip(keys, torch.autograd.grad(value, [outputs[k] for k in keys])))
            for layer, site, scope in places:
                s = arch.sites[site]
                x = inputs[(layer, scope)].detach().requires_grad_(s.port == "input")  # [rows, seq, in]
                scope_module = arch.layer(dest.model, layer).get_submodule(scope)
                module = arch.layer(dest.model, layer).get_submodule(s.module)
                g = grads[(layer, site)]  # [rows, seq, out]
                src = dict(source.arch.layer(source.model, layer).get_submodule(scope).named_parameters())
                dst = dict(scope_module.named_parameters())
                delta = _swap_terms(scope_module, module, s, src, x, g) - _swap_terms(scope_module, module, s, dst, x, g)
                totals[site][layer] += delta.cpu()
        progress((j + 1) / len(objectives), f"Estimating how much each neuron moves {what} "
                                            f"(batch {j + 1}/{len(objectives)})")
    same = weight_diff_scores(source, dest, sites)
    return Scores({s: torch.where(same[s] == 0, 0.0, t.float()) for s, t in totals.items()})


def causal_scores(source: LoadedModel, dest: LoadedModel, harmful: Sequence[str], harmless: Sequence[str] = (),
                  lang: str = "en", harmless_weight: float = 1.0, sites: Sequence[str] = ("mlp",),
                  batch_size: int = 4, progress: Progress = no_progress) -> Scores:
    """Scores {site: [L, N]}: first-order change of R(harmful) − w·R(harmless) in ``dest`` when one neuron's
    weights are copied from ``source`` (addition: source = donor; deletion: source = target)."""
    jobs = [(harmful[i:i + batch_size], 1.0 / len(harmful)) for i in range(0, len(harmful), batch_size)]
    if harmless and harmless_weight:
        jobs += [(harmless[i:i + batch_size], -harmless_weight / len(harmless))
                 for i in range(0, len(harmless), batch_size)]
    objectives = [partial(lambda p, w: _refusal_objective(dest, p, lang) * w, p, w) for p, w in jobs]
    return swap_effects(source, dest, objectives, sites, "refusal", progress)


def bias_causal_scores(source: LoadedModel, dest: LoadedModel, items: Sequence[BiasItem],
                       sites: Sequence[str] = ("mlp",), batch_size: int = 8, progress: Progress = no_progress) -> Scores:
    """Scores {site: [L, N]}: first-order change of −sign(P)·P in ``dest`` when one neuron's weights are copied
    from ``source``, P = ``dest``'s mean preference (score(stereotype) − score(anti-stereotype), nats per token)
    over ``items``: how far the swap moves the preference toward 0 (positive: less biased)."""
    sign = 1.0 if preference(dest, items).mean() >= 0 else -1.0
    spans = item_spans(dest, items)
    objectives = [partial(lambda chunk: -sign * preferences(dest, chunk).sum() / len(spans), spans[i:i + batch_size])
                  for i in range(0, len(spans), batch_size)]
    return swap_effects(source, dest, objectives, sites, "the bias preference", progress)


def random_scores(lm: LoadedModel, sites=("mlp",), seed: int = 0) -> Scores:
    gen = torch.Generator().manual_seed(seed)
    return Scores({s: torch.rand(lm.arch.n_layers, lm.arch.sites[s].size, generator=gen) for s in sites})


def rank_scores(ranking: str, donor: LoadedModel, target: LoadedModel, sites=("mlp",), seed: int = 0,
                prompts: PromptSet | BiasSet | None = None, delete: bool = False, lang: str = "en",
                harmless_weight: float = 1.0, progress: Progress = no_progress, function: str = "refusal") -> Scores:
    """Scores {site: [L, N]} of one of ``RANKINGS``, highest first is best (``Scores.top`` takes the top k).
    ``contrast`` and ``causal`` read the scan data of ``function`` from ``prompts`` (default: the bundled scan
    split of ``lang``): for refusal, harmful and harmless prompts, ``causal`` ranking for the transfer's
    direction (addition raises the target's refusal, deletion, ``delete``, lowers the donor's); for bias,
    bias items (a ``BiasSet``), ``contrast`` their stereotype vs anti-stereotype sentences in the donor and
    ``causal`` in either direction how far a swap moves the destination's preference toward 0
    (``bias_causal_scores``); for a user's own function (``match``: a reply pattern; ``openings``: reply openings),
    ``prompts`` of its two labels, ``contrast`` only."""
    if function not in TRANSFER_FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; transfer takes {', '.join(TRANSFER_FUNCTIONS)}")
    source, dest = (target, donor) if delete else (donor, target)
    if ranking in ("contrast", "causal") and function == "bias":
        items = prompts if prompts is not None else bundled_bias(lang, split="scan")
        if ranking == "contrast":
            return contrast_scores(donor, [it.sentence(it.stereotype) for it in items],
                                   [it.sentence(it.anti_stereotype) for it in items], sites)
        return bias_causal_scores(source, dest, list(items), sites, progress=progress)
    if ranking in ("contrast", "causal") and function in ("match", "openings"):
        if ranking == "causal" or prompts is None or len(prompts.labels) != 2:
            raise ValueError("a user's own function ranks by contrast on prompts of its two labels; causal needs a "
                             "fast score, not built for your own yet")
        first, second = (prompts.filter(label=label).texts for label in prompts.labels)
        return contrast_scores(donor, first, second, sites)
    if ranking in ("contrast", "causal"):
        prompts = prompts if prompts is not None else bundled_prompts(lang, split="scan")
        harmful, harmless = prompts.filter(label="harmful").texts, prompts.filter(label="harmless").texts
    if ranking == "weight-diff":
        return weight_diff_scores(donor, target, sites)
    if ranking == "contrast":
        return contrast_scores(donor, harmful, harmless, sites)
    if ranking == "causal":
        estimate = causal_scores(source, dest, harmful, harmless, lang, harmless_weight, sites, progress=progress)
        return Scores({s: -t if delete else t for s, t in estimate.items()})
    if ranking == "random":
        return random_scores(donor, sites, seed)
    raise ValueError(f"unknown ranking {ranking!r}; use one of {', '.join(RANKINGS)}")


def function_meta(function: str) -> dict:
    """The patch metadata that names a transfer's function: none for refusal (its patches predate functions)."""
    return {} if function == "refusal" else {"function": function}


def transfer_patch(donor: LoadedModel, target: LoadedModel, neurons: NeuronSet, check: bool = True, **meta) -> Patch:
    """A patch that writes the donor's weights for ``neurons`` into the target (``check=False`` when the
    caller has run ``require_compatible`` already)."""
    if check:
        require_compatible(donor, target)
    return extract_patch(donor, neurons, kind="transfer", target=target.spec, target_fingerprint=fingerprint(target.model),
                         **meta)
