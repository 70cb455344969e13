"""Patches: the weight slices of a set of neurons, taken from one model and written into another.

A patch is a safetensors file: for every (layer, site) and every weight slice of that site (see
``sites.WeightSlice``) one tensor of the source's values at the neurons' positions, plus the neuron set
and JSON metadata (both fingerprints, model class, parameters moved). ``apply_patch`` returns the patch
that undoes it (the target's values before), so a revert is bit-identical.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import nn

from neuronlab.errors import NeuronLabError, json_kind
from neuronlab.files import write_atomic
from neuronlab.neurons.sets import NeuronSet, NeuronSetError

if TYPE_CHECKING:  # annotations only: models/ loads models and imports this module
    from neuronlab.models.loading import LoadedModel

FORMAT = "neuronlab.patch/1"
NEURON_PREFIX = "neurons."
SCHEMA = ("a .safetensors file of some neurons' weights, their list and both models' fingerprints, made on the "
          "Transfer page or by `python -m neuronlab transfer`")
NOT_A_PATCH = "not a NeuronLab patch (safetensors) file"
PATCH_KINDS = ("transfer", "finetune", "revert", "other")
# the metadata read back from a patch file, and what each must be when present (null: absent)
META_TYPES = {**dict.fromkeys(("target_fingerprint", "source_fingerprint", "architecture", "source", "target", "kind",
                               "direction", "recipe", "method", "reverts"), "text"),
              **dict.fromkeys(("values", "neurons", "steps"), "a whole number"), "share_of_parameters": "a number",
              "scale": "a number"}


def fingerprint(model: nn.Module) -> str:
    """Content hash of a model's weights (tied tensors counted once)."""
    digest, seen = hashlib.sha256(), set()
    for name, tensor in sorted(model.state_dict().items()):
        if tensor.device.type == "meta" or (tensor.data_ptr(), tensor.shape) in seen:
            continue
        seen.add((tensor.data_ptr(), tensor.shape))
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
        digest.update(memoryview(data))
    return digest.hexdigest()[:16]


class PatchError(NeuronLabError):
    """A patch that is malformed or does not fit the model it is applied to."""


@dataclass
class Patch:
    neurons: NeuronSet
    tensors: dict[str, torch.Tensor]  # "LAYER.SITE.PARAM" -> source values at the neurons' slice
    meta: dict = field(default_factory=dict)
    source: str = field(default="", compare=False)  # the file it was read from, named in error messages

    @property
    def kind(self) -> str:
        """What made the patch: ``transfer`` (a donor's weights for a target), ``finetune`` (trained in
        place), ``revert`` (a model's own weights, to undo another patch) or ``other``. Written into the
        metadata when a patch is made; read from older files' metadata keys."""
        if self.meta.get("kind") in PATCH_KINDS:
            return self.meta["kind"]
        if "reverts" in self.meta:
            return "revert"
        if "method" in self.meta or "recipe" in self.meta:
            return "finetune"
        return "transfer" if "target" in self.meta and "source" in self.meta else "other"

    @property
    def n_values(self) -> int:
        """Number of scalar weights the patch writes."""
        return sum(t.numel() for t in self.tensors.values())

    def to_bytes(self) -> bytes:
        """The patch as a safetensors file's content (what ``save`` writes and ``from_bytes`` reads)."""
        tensors = {**{k: v.contiguous() for k, v in self.tensors.items()}, **self.neurons.to_tensors(NEURON_PREFIX)}
        return save(tensors, metadata={"format": FORMAT, "meta": json.dumps(self.meta)})

    def save(self, path: str | Path) -> Path:
        return write_atomic(path, self.to_bytes())

    @classmethod
    def from_bytes(cls, content: bytes, source: str = "upload") -> "Patch":
        """Read a patch file's content (e.g. an upload). Raises PatchError, naming ``source`` once."""
        try:
            tensors = load(content)
        except SafetensorError:
            raise PatchError(f"{source}: {NOT_A_PATCH}: {_unreadable(content)}; a patch is {SCHEMA}") from None
        header = json.loads(content[8:8 + int.from_bytes(content[:8], "little")]).get("__metadata__") or {}
        if header.get("format") != FORMAT:  # safetensors checked the header: metadata maps strings to strings
            raise PatchError(f"{source}: {NOT_A_PATCH}: a safetensors file without NeuronLab's metadata (model "
                             f"weights, perhaps); a patch is {SCHEMA}")
        try:
            listed = {k: v for k, v in tensors.items() if k.startswith(NEURON_PREFIX)}
            if any(v.is_floating_point() or v.dtype == torch.bool for v in listed.values()):
                raise ValueError("its neuron list is not integers")
            neurons = NeuronSet.from_tensors(listed, prefix=NEURON_PREFIX)
            meta = _meta(header.get("meta", "{}"))
        except (RuntimeError, ValueError) as e:  # NeuronSetError is a ValueError
            raise PatchError(f"{source}: a damaged NeuronLab patch ({e}); make it again") from None
        weights = {k: v for k, v in tensors.items() if not k.startswith(NEURON_PREFIX)}
        return cls(neurons, weights, meta, source)

    @classmethod
    def load(cls, path: str | Path) -> "Patch":
        try:
            content = Path(path).read_bytes()
        except OSError as e:
            raise PatchError(f"{path}: cannot read the file ({e.strerror or e})") from None
        return cls.from_bytes(content, str(path))


def _meta(text: str) -> dict:
    """A patch's JSON metadata; raises ValueError in plain words."""
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, nested too deeply, or a number of thousands of digits
        raise ValueError("its metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise ValueError(f"its metadata is {json_kind(meta)}, not a JSON object")
    for key, wanted in META_TYPES.items():
        value = meta.get(key)
        ok = {"text": isinstance(value, str), "a whole number": type(value) is int,
              "a number": type(value) is int or (type(value) is float and math.isfinite(value))}[wanted]
        if value is not None and not ok:
            raise ValueError(f"its metadata's {key!r} is {json_kind(value)}, not {wanted}")
    return meta


def _unreadable(content: bytes) -> str:
    """Why ``content`` is not a safetensors file, in plain words."""
    if not content:
        return "the file is empty"
    if content.lstrip()[:1] in (b"{", b"[") and b"\x00" not in content[:8]:  # a header size holds zero bytes
        return "it is JSON text (a neuron set or a results file, perhaps), not weights"
    if content[8:9] == b"{" and 2 <= int.from_bytes(content[:8], "little") < 100_000_000:
        return "the file is cut short or damaged (an interrupted download?)"
    return "its bytes are not a safetensors file"


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


def scaled_patch(lm: LoadedModel, neurons: NeuronSet, scale: float, **meta) -> Patch:
    """A patch for ``lm`` that multiplies each of ``neurons``' contribution by ``scale``, as
    ``Intervention(neurons, "activate", scale)`` does, but in the weights: the slices that read the neuron (its
    column of the module an input-port site feeds, e.g. down_proj) or, for an output-port site, every slice that
    makes it (its rows and bias)."""
    patch = extract_patch(lm, neurons, **meta)
    tensors = {}
    for key, values in patch.tensors.items():
        _, site, param = key.split(".", 2)
        s = lm.arch.sites[site]
        tensors[key] = values * scale if s.port == "output" or param == f"{s.module}.weight" else values
    return Patch(neurons, tensors, {**patch.meta, "target_fingerprint": fingerprint(lm.model), "scale": scale})


def changes_nothing(lm: LoadedModel, patch: Patch) -> bool:
    """Whether writing ``patch`` into ``lm`` would leave every weight as it is (e.g. copying neurons that a
    donor never changed from its target)."""
    return all(torch.equal(param.detach().index_select(dim, pos).cpu(), patch.tensors[key])
               for key, param, dim, pos in _slices(lm, patch.neurons))


def _checked_slices(lm: LoadedModel, patch: Patch, actual_fingerprint: str | None) -> list:
    """The patch's slices of ``lm``, after checking that the patch fits (raises PatchError naming the patch's
    file, when it was read from one, and what to do)."""
    def error(problem: str) -> PatchError:
        return PatchError(f"{patch.source}: {problem}" if patch.source else problem)

    bad = [key for key, value in patch.tensors.items() if value.is_floating_point() and not value.isfinite().all()]
    if bad:
        raise error(f"the patch holds NaN or infinite weights ({', '.join(bad[:3])}); it is damaged")
    expected = patch.meta.get("target_fingerprint")
    if actual_fingerprint and expected and actual_fingerprint != expected:
        made_for = f" ({patch.meta['target']})" if patch.meta.get("target") else ""
        raise error(f"this patch was made for a model with fingerprint {expected}{made_for}, not for {lm.spec} "
                    f"(fingerprint {actual_fingerprint}); load the model it was made for, or revert the patches "
                    "applied to this one since")
    if patch.meta.get("architecture") not in (None, lm.info.architecture):
        raise error(f"this patch is for a {patch.meta['architecture']} model, not {lm.spec} "
                    f"({lm.info.architecture})")
    try:
        slices = list(_slices(lm, patch.neurons))
    except NeuronSetError as e:
        raise error(f"the patch's neurons do not fit {lm.spec}: {e}") from None
    missing = sorted({key for key, *_ in slices} ^ set(patch.tensors))
    if missing:
        raise error(f"patch and model disagree on weight slices ({', '.join(missing[:5])}); the patch is damaged "
                    "or made for another kind of model")
    for key, param, dim, pos in slices:
        value, wanted = patch.tensors[key], param.index_select(dim, pos).shape
        if value.shape != wanted:
            raise error(f"{key}: patch shape {tuple(value.shape)} does not fit the model's {tuple(wanted)}; it was "
                        "made for a model of another size")
    return slices


def check_patch(lm: LoadedModel, patch: Patch, force: bool = False) -> Patch:
    """Raise PatchError unless ``patch`` fits ``lm`` as loaded (finite values, architecture, neurons, shapes,
    and made for its fingerprint at load time); returns the patch. A patch from outside (a file, an upload)
    must name the model it was made for; ``force`` applies one made for another model or for none."""
    _checked_slices(lm, patch, None if force else lm.info.fingerprint)
    if not force and not patch.meta.get("target_fingerprint") and patch.kind != "revert":
        name = f"{patch.source}: " if patch.source else ""
        raise PatchError(f"{name}the patch does not say which model it was made for (no target fingerprint); apply "
                         "it only if you know it fits, with --force (command line) or \"apply anyway\" (app)")
    return patch


def forced(lm: LoadedModel, patch: Patch) -> Patch:
    """``patch`` checked with ``force`` and marked as made for ``lm`` (what --force and "apply anyway" do), so
    every later use checks it against this model."""
    check_patch(lm, patch, force=True)
    return Patch(patch.neurons, patch.tensors, {**patch.meta, "target_fingerprint": lm.info.fingerprint, "forced": True},
                 patch.source)


def apply_patch(lm: LoadedModel, patch: Patch, check_fingerprint: bool = True) -> Patch:
    """Write ``patch`` into ``lm`` in place and return the patch that undoes it.

    With ``check_fingerprint`` the model must be the one the patch was made for (``target_fingerprint``)."""
    slices = _checked_slices(lm, patch, fingerprint(lm.model) if check_fingerprint else None)
    undo = {}
    with torch.no_grad():
        for key, param, dim, pos in slices:
            undo[key] = param.detach().index_select(dim, pos).cpu().clone()
            param.index_copy_(dim, pos, patch.tensors[key].to(param.device, param.dtype))
    return Patch(patch.neurons, undo, {"kind": "revert", "reverts": patch.meta.get("source_fingerprint"),
                                       "architecture": lm.info.architecture})


@contextmanager
def patched(lm: LoadedModel, patch: Patch, check_fingerprint: bool = True) -> Iterator[LoadedModel]:
    """Apply ``patch`` for the block and revert it exactly afterwards (exceptions included).

    Weight patches change the model in place: threads that share a model use ``models.host.HostedModel``."""
    undo = apply_patch(lm, patch, check_fingerprint)
    try:
        yield lm
    finally:
        apply_patch(lm, undo, check_fingerprint=False)
