"""One forward pass over a prompt set, kept, so that every neuron's statistics afterwards are slicing.

For each prompt and each neuron of the chosen sites the pass records the activation at the prompt's last
token (where the reply begins, as the scan scores it), and the highest and lowest activation over the
prompt's own tokens with their positions. The prompt's own tokens are the chat-templated tokens from the
first one after the template's header (system prompt, user marker), which every prompt shares: a neuron
firing on the header would otherwise peak at the same place in every prompt. Positions count the
templated tokens from 0, so ``token_ids(row)[position]`` is the peak token.

Values are float16 (clamped to ±65504), positions int16 (int32 past 32767 tokens): for SmolLM2-135M's
46,080 MLP neurons, about 0.9 MB per prompt. A pass is kept in memory per (model fingerprint, prompts in
order, sites, tag), the last ``MAX_KEPT`` of them, and on disk under ``cache_root()/activations`` with
``disk=True``.
"""
from __future__ import annotations

import hashlib
import json
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from neuronlab.data.prompts import Prompt, PromptSet
from neuronlab.files import write_atomic
from neuronlab.models.chat import chat_ids
from neuronlab.models.generation import encode_prompts
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import scoped_hooks
from neuronlab.neurons.sets import Neuron
from neuronlab.paths import cache_root
from neuronlab.progress import Progress, no_progress

FORMAT = 1
KINDS = ("last", "max", "argmax", "min", "argmin")  # per site, each [layers, prompts, neurons]
MAX_KEPT = 4  # passes kept in memory
HALF_MAX = 65504.0
_KEPT: OrderedDict[str, ActivationPass] = OrderedDict()
_LOCK = threading.Lock()


@dataclass
class ActivationPass:
    """A prompt set's activations, per site: ``tensors["last.mlp"]`` etc. ([layers, prompts, neurons]),
    and the prompts' templated token ids (``tokens`` flat, ``offsets`` [prompts + 1], ``starts`` [prompts])."""

    key: str
    model: str
    fingerprint: str
    prompts: tuple[Prompt, ...]
    sites: tuple[str, ...]
    tensors: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.prompts)

    def column(self, kind: str, neuron: Neuron) -> torch.Tensor:
        """One neuron's ``kind`` over the prompts [prompts]: float32 values or int64 positions."""
        layer, site, index = neuron
        if site not in self.sites:
            raise ValueError(f"this activation pass recorded {', '.join(self.sites)}, not {site}")
        out = self.tensors[f"{kind}.{site}"][layer, :, index]  # [prompts]
        return out.long() if kind.startswith("arg") else out.float()

    def rows(self, lang: str | None = None, label: str | None = None) -> torch.Tensor:
        """Indices of the prompts of ``lang`` and ``label`` (any when None) [k]."""
        return torch.tensor([i for i, p in enumerate(self.prompts)
                             if (lang is None or p.lang == lang) and (label is None or p.label == label)],
                            dtype=torch.long)

    def token_ids(self, row: int) -> list[int]:
        """Prompt ``row``'s chat-templated token ids, as the model read them."""
        offsets = self.tensors["offsets"]
        return self.tensors["tokens"][offsets[row]:offsets[row + 1]].tolist()

    def start(self, row: int) -> int:
        """Position of prompt ``row``'s first token after the template's header."""
        return int(self.tensors["starts"][row])

    def save(self, path: str | Path) -> Path:
        meta = {"neuronlab": json.dumps({"format": FORMAT, "key": self.key, "model": self.model,
                                         "fingerprint": self.fingerprint, "sites": list(self.sites)})}
        tensors = {k: v.contiguous() for k, v in self.tensors.items()}
        return write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def pass_key(lm: LoadedModel, prompts: PromptSet, sites: Sequence[str], tag: str = "") -> str:
    """The cache key: model fingerprint, the prompts in order, the sites, ``tag`` (e.g. an applied patch)."""
    rows = [[p.id, p.lang, p.label, p.split, p.text] for p in prompts]
    blob = json.dumps({"format": FORMAT, "fingerprint": lm.info.fingerprint, "prompts": rows,
                       "sites": list(sites), "tag": tag}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def header_length(lm: LoadedModel, ids: Sequence[int], probes: tuple[list[int], ...]) -> int:
    """How many of ``ids``' first tokens are the chat template's header: the shortest common prefix with the
    templated ids of two different one-character prompts (``probes``)."""
    def common(a: Sequence[int], b: Sequence[int]) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n
    return min(min(common(ids, p) for p in probes), len(ids) - 1)


def build_pass(lm: LoadedModel, prompts: PromptSet, sites: Sequence[str] = ("mlp",), batch_size: int = 8,
               tag: str = "", progress: Progress = no_progress) -> ActivationPass:
    """Run the model once over ``prompts`` (left-padded batches) and record every neuron of ``sites``."""
    arch, sites = lm.arch, tuple(sites)
    for site in sites:
        if site not in arch.sites:
            raise ValueError(f"unknown site {site!r}; use one of {', '.join(arch.sites)}")
    L, P = arch.n_layers, len(prompts)
    if not P:
        raise ValueError("an activation pass needs at least one prompt")
    value = {f"{k}.{s}": torch.zeros(L, P, arch.sites[s].size,  # [layers, prompts, neurons]
                                     dtype=torch.int32 if k.startswith("arg") else torch.float16)
             for s in sites for k in KINDS}
    probes = (chat_ids(lm, "0"), chat_ids(lm, "1"))
    texts, ids, starts = [p.text for p in prompts], [], []
    state: dict = {}  # this batch: rows, valid [batch, seq], pad [batch]

    def record(layer: int, module_sites: tuple[str, ...], x: torch.Tensor) -> None:  # x [batch, seq, width]
        rows, valid, pad = state["rows"], state["valid"].to(x.device), state["pad"].to(x.device)
        for site in module_sites:
            s = arch.sites[site]
            a = x[..., s.offset:s.offset + s.size].float().clamp(-HALF_MAX, HALF_MAX)  # [batch, seq, N]
            value[f"last.{site}"][layer, rows] = a[:, -1].half().cpu()
            for kind, fill, pick in (("max", -torch.inf, torch.max), ("min", torch.inf, torch.min)):
                v, at = pick(a.masked_fill(~valid[..., None], fill), dim=1)  # [batch, N] each
                value[f"{kind}.{site}"][layer, rows] = v.half().cpu()
                value[f"arg{kind}.{site}"][layer, rows] = (at - pad[:, None]).int().cpu()

    hooks, seen = [], {}
    for site in sites:
        seen.setdefault(arch.sites[site].module, []).append(site)
    for layer in range(L):
        for path, module_sites in seen.items():
            s = arch.sites[module_sites[0]]
            hooks.append((arch.layer(lm.model, layer).get_submodule(path), s.port,
                          lambda x, layer=layer, ms=tuple(module_sites): record(layer, ms, x)))

    with scoped_hooks(hooks), torch.inference_mode():
        for first in range(0, P, batch_size):
            batch = encode_prompts(lm, texts[first:first + batch_size])
            mask = batch["attention_mask"].bool()  # [batch, seq]
            pad = (~mask).sum(1)  # [batch]
            for row in range(mask.shape[0]):
                ids.append(batch["input_ids"][row, mask[row]].tolist())
                starts.append(header_length(lm, ids[-1], probes))
            begin = pad + torch.tensor(starts[first:], device=pad.device)  # [batch]
            positions = torch.arange(mask.shape[1], device=mask.device)
            state.update(rows=torch.arange(first, first + mask.shape[0]), pad=pad,
                         valid=mask & (positions[None, :] >= begin[:, None]))
            lm.model.base_model(**batch)
            done = first + mask.shape[0]
            progress(done / P, f"{done} of {P} prompts read")
    longest = max(map(len, ids))
    position_dtype = torch.int16 if longest < 2 ** 15 else torch.int32
    for name in [k for k in value if k.startswith("arg")]:
        value[name] = value[name].to(position_dtype)
    value["tokens"] = torch.tensor([t for row in ids for t in row], dtype=torch.int32)
    value["offsets"] = torch.tensor([0, *torch.tensor(list(map(len, ids))).cumsum(0).tolist()], dtype=torch.int64)
    value["starts"] = torch.tensor(starts, dtype=torch.int32)
    return ActivationPass(pass_key(lm, prompts, sites, tag), lm.spec, lm.info.fingerprint, tuple(prompts), sites,
                          value)


def _read(path: Path, lm: LoadedModel, prompts: PromptSet, sites: tuple[str, ...], key: str) -> ActivationPass | None:
    """A pass saved on disk, or None (after deleting it, with a warning) when it is not the one asked for."""
    try:
        tensors = load_file(str(path))
        shape = {f"{k}.{s}": (lm.arch.n_layers, len(prompts), lm.arch.sites[s].size) for s in sites for k in KINDS}
        wrong = [k for k, v in shape.items() if k not in tensors or tuple(tensors[k].shape) != v]
        wrong += [k for k in ("tokens", "offsets", "starts") if k not in tensors]
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        wrong = [f"unreadable: {e}"]
    if not wrong:
        return ActivationPass(key, lm.spec, lm.info.fingerprint, tuple(prompts), sites, tensors)
    warnings.warn(f"activation cache {path} is damaged ({', '.join(wrong)}); deleting it", stacklevel=3)
    path.unlink(missing_ok=True)
    return None


def activation_pass(lm: LoadedModel, prompts: PromptSet, sites: Sequence[str] = ("mlp",), batch_size: int = 8,
                    tag: str = "", disk: bool = False, progress: Progress = no_progress) -> ActivationPass:
    """The activation pass of ``prompts`` on ``lm``: kept in memory from an earlier call, read from disk
    (``disk=True``), or built (one forward pass per batch) and kept. ``tag`` names what the fingerprint does
    not see (a patch applied in place)."""
    sites = tuple(sites)
    key = pass_key(lm, prompts, sites, tag)
    with _LOCK:
        if key in _KEPT:
            _KEPT.move_to_end(key)
            progress(1.0, "activations kept from an earlier pass")
            return _KEPT[key]
    path = cache_root() / "activations" / f"{key}.safetensors"
    found = _read(path, lm, prompts, sites, key) if disk and path.is_file() else None
    if found is not None:
        progress(1.0, "activations read from the cache")
    else:
        found = build_pass(lm, prompts, sites, batch_size, tag, progress)
        if disk:
            found.save(path)
    with _LOCK:
        _KEPT[key] = found
        while len(_KEPT) > MAX_KEPT:
            _KEPT.popitem(last=False)
    return found


def forget_passes() -> None:
    """Drop every pass kept in memory (the disk cache stays)."""
    with _LOCK:
        _KEPT.clear()
