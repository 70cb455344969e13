"""Neuron importance on a prompt set, three ways, vectorised over neurons and batched with left padding.

h(x) is the final (normed) hidden state at the prompt's last token, where the reply begins; N's
deactivation zeroes its activation at every position. All scores are float32 [layers, neurons] per site.

- ``activation``: mean activation and mean |activation| at the last token (one forward pass a batch).
- ``ablation``: the exact I(N, D) = mean_x ||h(x) - h_{-N}(x)||_2, one forward pass per neuron (run
  ``chunk`` neurons at once by repeating the batch), for a chosen set of neurons.
- ``attribution``: a first-order estimate of I(N, D) for every neuron at once. Zeroing N changes h by
  about -J_N a_N (summed over positions); for a Gaussian probe u, E[(u . J_N a_N)^2] = ||J_N a_N||^2, and
  one backward pass of u . h gives u . J_N a_N for all neurons. ``probes`` probes ride along as copies of
  the batch, so it is one forward and one backward pass per batch. Spearman rank correlation with exact
  ``ablation`` on SmolLM2-135M (72 random MLP neurons in layers 3/15/27, 16 harmful prompts): 0.985 with
  4 probes, 0.993 with 8 (tests/test_scan.py checks >= 0.8 on a smaller sample).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from neuronlab.models.generation import encode_prompts
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import scoped_hooks
from neuronlab.neurons.scores import Scores
from neuronlab.neurons.sets import NeuronSet
from neuronlab.progress import Progress, no_progress

Batch = dict[str, torch.Tensor]


def _batches(lm: LoadedModel, texts: Sequence[str], batch_size: int):
    for start in range(0, len(texts), batch_size):
        yield encode_prompts(lm, texts[start:start + batch_size])


def module_hooks(lm: LoadedModel, sites: Sequence[str], fn: Callable) -> list:
    """(module, port, hook) for every layer and every distinct module among ``sites``; ``fn(layer,
    module_path, tensor)`` may return a replacement tensor."""
    hooks, seen = [], set()
    for layer in range(lm.arch.n_layers):
        for site in sites:
            s = lm.arch.sites[site]
            if (layer, s.module) in seen:
                continue
            seen.add((layer, s.module))
            module = lm.arch.layer(lm.model, layer).get_submodule(s.module)
            hooks.append((module, s.port, lambda x, layer=layer, path=s.module: fn(layer, path, x)))
    return hooks


def final_hidden(lm: LoadedModel, batch: Batch) -> torch.Tensor:
    """h(x): the base model's last hidden state at the last position [batch, hidden]."""
    return lm.model.base_model(**batch).last_hidden_state[:, -1]


def _site_slice(lm: LoadedModel, site: str, x: torch.Tensor) -> torch.Tensor:
    s = lm.arch.sites[site]
    return x[..., s.offset:s.offset + s.size]


def activation_scores(lm: LoadedModel, texts: Sequence[str], sites: Sequence[str], batch_size: int = 8,
                      progress: Progress = no_progress) -> dict[str, dict[str, torch.Tensor]]:
    """{site: {"mean": [L, N], "mean_abs": [L, N]}} of last-token activations over ``texts``."""
    L, device = lm.arch.n_layers, lm.device
    sums = {s: torch.zeros(L, lm.arch.sites[s].size, dtype=torch.float64, device=device) for s in sites}
    abs_sums = {s: torch.zeros_like(t) for s, t in sums.items()}
    by_module = {lm.arch.sites[s].module: [t for t in sites if lm.arch.sites[t].module == lm.arch.sites[s].module]
                 for s in sites}

    last: dict[str, list[torch.Tensor]] = {}

    def record(layer: int, path: str, x: torch.Tensor) -> None:  # x [batch, seq, width]
        last.setdefault(path, []).append(x[:, -1].clone())  # [batch, width]; layers arrive in order

    n = len(texts)
    with scoped_hooks(module_hooks(lm, sites, record)), torch.inference_mode():
        for i, batch in enumerate(_batches(lm, texts, batch_size)):
            last.clear()
            final_hidden(lm, batch)
            for path, per_layer in last.items():
                stacked = torch.stack([t.to(device) for t in per_layer]).double()  # [L, batch, width]
                for site in by_module[path]:
                    a = _site_slice(lm, site, stacked)  # [L, batch, N]
                    sums[site] += a.sum(1)
                    abs_sums[site] += a.abs().sum(1)
            progress(min(1.0, (i + 1) * batch_size / n), f"{min(n, (i + 1) * batch_size)} of {n} prompts read")
    return {s: {"mean": (sums[s] / n).float().cpu(), "mean_abs": (abs_sums[s] / n).float().cpu()} for s in sites}


def ablation_scores(lm: LoadedModel, texts: Sequence[str], neurons: NeuronSet, batch_size: int = 8,
                    chunk: int = 16, progress: Progress = no_progress) -> Scores:
    """Scores {site: [L, N]}: exact I(N, D) for ``neurons``; NaN for neurons not asked for."""
    arch = lm.arch
    neurons.validate(arch)
    out = {s: torch.full((arch.n_layers, arch.sites[s].size), float("nan")) for s in neurons.sites}
    jobs = [(layer, site, idx[i:i + chunk]) for (layer, site), idx in neurons.grouped().items()
            for i in range(0, len(idx), chunk)]
    batches = list(_batches(lm, texts, batch_size))
    with torch.inference_mode():
        plain = [final_hidden(lm, b) for b in batches]  # [batch, hidden] each
        for j, (layer, site, idx) in enumerate(jobs):
            k, s = len(idx), arch.sites[site]
            total = torch.zeros(k, dtype=torch.float64)
            cols = torch.as_tensor(s.offset + idx)  # copy c of the batch zeroes channel cols[c]
            for batch, h in zip(batches, plain):
                B = batch["input_ids"].shape[0]
                row_cols = cols.repeat_interleave(B)  # [k*B]

                def zero(x: torch.Tensor) -> torch.Tensor:  # x [k*B, seq, width]
                    x = x.clone()
                    x[torch.arange(x.shape[0], device=x.device), :, row_cols.to(x.device)] = 0
                    return x

                module = arch.layer(lm.model, layer).get_submodule(s.module)
                repeated = {key: v.repeat(k, 1) for key, v in batch.items()}
                with scoped_hooks([(module, s.port, zero)]):
                    h_off = final_hidden(lm, repeated).view(k, B, -1)  # [k, batch, hidden]
                total += (h_off - h.unsqueeze(0)).float().norm(dim=-1).sum(1).double().cpu()
            out[site][layer, torch.as_tensor(idx)] = (total / len(texts)).float()
            progress((j + 1) / len(jobs), f"layer {layer}: {k} neurons switched off in turn")
    return Scores(out)


def _probes(seed: int, first: int, batch: int, probes: int, hidden: int) -> torch.Tensor:
    """Gaussian probes [probes*batch, hidden], row p*batch+b for prompt first+b: drawn per prompt, so
    scores do not depend on how prompts are batched."""
    per_prompt = [torch.randn(probes, hidden, generator=torch.Generator().manual_seed(seed * 1_000_003 + first + b))
                  for b in range(batch)]
    return torch.stack(per_prompt, 1).reshape(probes * batch, hidden)


def attribution_scores(lm: LoadedModel, texts: Sequence[str], sites: Sequence[str], batch_size: int = 8,
                       probes: int = 8, seed: int = 0, progress: Progress = no_progress) -> Scores:
    """Scores {site: [L, N]}: first-order estimate of I(N, D) for every neuron of ``sites``."""
    arch = lm.arch
    totals = {s: torch.zeros(arch.n_layers, arch.sites[s].size, dtype=torch.float64) for s in sites}
    n = len(texts)
    for i, batch in enumerate(_batches(lm, texts, batch_size)):
        B = batch["input_ids"].shape[0]
        captured: dict[tuple[int, str], torch.Tensor] = {}

        def keep(layer: int, path: str, x: torch.Tensor) -> None:
            captured[(layer, path)] = x

        repeated = {key: v.repeat(probes, 1) for key, v in batch.items()}  # [probes*B, seq]
        with scoped_hooks(module_hooks(lm, sites, keep)), torch.enable_grad():
            h = final_hidden(lm, repeated)  # [probes*B, hidden]
            u = _probes(seed, i * batch_size, B, probes, h.shape[-1]).to(h.device, h.dtype)
            keys = list(captured)
            grads = torch.autograd.grad((u * h).sum(), [captured[k] for k in keys])
        for (layer, path), x, g in zip(keys, (captured[k] for k in keys), grads):
            proj = (x.detach() * g).sum(1).float().view(probes, B, -1)  # u . J a per probe [probes, B, width]
            estimate = proj.pow(2).mean(0).sqrt().sum(0).double().cpu()  # sum over prompts [width]
            for site in sites:
                s = arch.sites[site]
                if s.module == path:
                    totals[site][layer] += estimate[s.offset:s.offset + s.size]
        progress(min(1.0, (i + 1) * batch_size / n), f"{min(n, (i + 1) * batch_size)} of {n} prompts read")
    return Scores({s: (t / n).float() for s, t in totals.items()})
