"""Patches: the weight slices of a set of neurons, taken from one model and written into another.

A patch is a safetensors file: for every (layer, site) and every weight slice of that site (see
``sites.WeightSlice``) one tensor of the source's values at the neurons' positions, plus the neuron set
and JSON metadata (both fingerprints, model class, parameters moved). ``apply_patch`` returns the patch
that undoes it (the target's values before), so a revert is bit-identical.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .loading import LoadedModel, fingerprint
from .neurons import NeuronSet

FORMAT = "neuronlab.patch/1"
NEURON_PREFIX = "neurons."


class PatchError(ValueError):
    """A patch that is malformed or does not fit the model it is applied to."""


@dataclass
class Patch:
    neurons: NeuronSet
    tensors: dict[str, torch.Tensor]  # "LAYER.SITE.PARAM" -> source values at the neurons' slice
    meta: dict = field(default_factory=dict)

    @property
    def n_values(self) -> int:
        """Number of scalar weights the patch writes."""
        return sum(t.numel() for t in self.tensors.values())

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tensors = {**{k: v.contiguous() for k, v in self.tensors.items()}, **self.neurons.to_tensors(NEURON_PREFIX)}
        save_file(tensors, str(path), metadata={"format": FORMAT, "meta": json.dumps(self.meta)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Patch":
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), "pt") as f:
                header = f.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise PatchError(f"{path}: not a readable safetensors patch ({e})") from None
        if header.get("format") != FORMAT:
            raise PatchError(f"{path}: not a NeuronLab patch (format {header.get('format')!r}, expected {FORMAT})")
        neurons = NeuronSet.from_tensors({k: v for k, v in tensors.items() if k.startswith(NEURON_PREFIX)},
                                         prefix=NEURON_PREFIX)
        weights = {k: v for k, v in tensors.items() if not k.startswith(NEURON_PREFIX)}
        return cls(neurons, weights, json.loads(header.get("meta", "{}")))


def _slices(lm: LoadedModel, neurons: NeuronSet) -> Iterator[tuple[str, torch.Tensor, int, torch.Tensor]]:
    """(key, parameter, dim, positions) for every weight slice of every (layer, site) group."""
    neurons.validate(lm.arch)
    for (layer, site), idx in neurons.grouped().items():
        block = lm.arch.layer(lm.model, layer)
        for ws in lm.arch.sites[site].weights:
            param = block.get_parameter(ws.param)
            yield f"{layer}.{site}.{ws.param}", param, ws.dim, torch.as_tensor(idx + ws.offset, device=param.device)


def extract_patch(source: LoadedModel, neurons: NeuronSet, **meta) -> Patch:
    """The source model's weights for ``neurons``."""
    tensors = {key: param.detach().index_select(dim, pos).cpu().clone() for key, param, dim, pos in _slices(source, neurons)}
    total = sum(p.numel() for p in source.model.parameters())
    n_values = sum(t.numel() for t in tensors.values())
    return Patch(neurons, tensors, {"source_fingerprint": fingerprint(source.model), "source": source.spec,
                                    "architecture": source.info.architecture, "neurons": len(neurons),
                                    "values": n_values, "share_of_parameters": n_values / total, **meta})


def apply_patch(lm: LoadedModel, patch: Patch, check_fingerprint: bool = True) -> Patch:
    """Write ``patch`` into ``lm`` in place and return the patch that undoes it.

    With ``check_fingerprint`` the model must be the one the patch was made for (``target_fingerprint``)."""
    expected = patch.meta.get("target_fingerprint")
    if check_fingerprint and expected and (actual := fingerprint(lm.model)) != expected:
        raise PatchError(f"this patch was made for a model with fingerprint {expected}, not {lm.spec} "
                         f"({actual}); load that model, or revert the patches applied since")
    if patch.meta.get("architecture") not in (None, lm.info.architecture):
        raise PatchError(f"this patch is for {patch.meta['architecture']}, not {lm.info.architecture}")
    slices = list(_slices(lm, patch.neurons))
    missing = sorted({key for key, *_ in slices} ^ set(patch.tensors))
    if missing:
        raise PatchError(f"patch and model disagree on weight slices: {', '.join(missing[:5])}")
    undo = {}
    with torch.no_grad():
        for key, param, dim, pos in slices:
            value = patch.tensors[key]
            if value.shape != param.index_select(dim, pos).shape:
                raise PatchError(f"{key}: patch shape {tuple(value.shape)} does not fit the model")
        for key, param, dim, pos in slices:
            undo[key] = param.detach().index_select(dim, pos).cpu().clone()
            param.index_copy_(dim, pos, patch.tensors[key].to(param.device, param.dtype))
    return Patch(patch.neurons, undo, {"reverts": patch.meta.get("source_fingerprint"),
                                       "architecture": lm.info.architecture})


@contextmanager
def patched(lm: LoadedModel, patch: Patch, check_fingerprint: bool = True) -> Iterator[LoadedModel]:
    """Apply ``patch`` for the block and revert it exactly afterwards (exceptions included).

    Weight patches change the shared model: callers that share a model across threads hold a lock."""
    undo = apply_patch(lm, patch, check_fingerprint)
    try:
        yield lm
    finally:
        apply_patch(lm, undo, check_fingerprint=False)
