"""The neuron vocabulary: a Neuron is (layer, site, index); a NeuronSet is an immutable set of them."""
from __future__ import annotations

import json
import operator
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Set
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from neuronlab.errors import json_kind
from neuronlab.files import write_atomic
from neuronlab.neurons.set_json import (
    SCHEMA,
    NeuronSetError,
    named_sets,
    parse_json,
    set_name,
    shown,
    whole_number,
)
from neuronlab.neurons.sites import SITES, Architecture

FORMAT = "neuronlab.neurons/1"


class Neuron(NamedTuple):
    layer: int
    site: str
    index: int


def _as_neuron(item) -> Neuron:
    if isinstance(item, dict):
        item = (item.get("layer"), item.get("site"), item.get("index"))
    try:
        layer, site, index = item
    except (TypeError, ValueError):
        raise NeuronSetError(f"not a (layer, site, index) neuron: {item!r}") from None
    if isinstance(layer, bool) or isinstance(index, bool) or not isinstance(site, str):
        raise NeuronSetError(f"not a (layer, site, index) neuron: {item!r}")
    try:  # integers of any kind (Python, numpy, a 0-d integer tensor); never a float, which would be cut to one
        return Neuron(operator.index(layer), site, operator.index(index))
    except TypeError:
        raise NeuronSetError(f"not a (layer, site, index) neuron with whole-number layer and index: {item!r}") from None


class NeuronSet(Set):
    """Immutable set of neurons with set algebra (| & - ^), per-layer counts and JSON/safetensors IO.

    Iteration is sorted by (layer, site, index), so equal sets serialise identically.
    """

    __slots__ = ("_items", "name")

    def __init__(self, neurons: Iterable = (), name: str = ""):
        object.__setattr__(self, "_items", frozenset(_as_neuron(n) for n in neurons))
        object.__setattr__(self, "name", name)

    def __setattr__(self, key, value):
        raise AttributeError("a NeuronSet is immutable; set algebra and renamed() return new sets")

    @classmethod
    def _from_iterable(cls, it):
        return cls(it)

    @classmethod
    def from_indices(cls, layer: int, site: str, indices: Iterable[int], name: str = "") -> "NeuronSet":
        return cls(((layer, site, int(i)) for i in indices), name=name)

    def __contains__(self, item) -> bool:
        try:
            return _as_neuron(item) in self._items
        except NeuronSetError:
            return False

    def __iter__(self) -> Iterator[Neuron]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    # Fast paths between NeuronSets (frozenset operations in C); other operands use the Set mixins.
    def __eq__(self, other) -> bool:
        return self._items == other._items if isinstance(other, NeuronSet) else Set.__eq__(self, other)

    def __le__(self, other) -> bool:
        return self._items <= other._items if isinstance(other, NeuronSet) else Set.__le__(self, other)

    def __and__(self, other) -> "NeuronSet":
        return _wrap(self._items & other._items) if isinstance(other, NeuronSet) else Set.__and__(self, other)

    def __or__(self, other) -> "NeuronSet":
        return _wrap(self._items | other._items) if isinstance(other, NeuronSet) else Set.__or__(self, other)

    def __sub__(self, other) -> "NeuronSet":
        return _wrap(self._items - other._items) if isinstance(other, NeuronSet) else Set.__sub__(self, other)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<NeuronSet{label}: {len(self)} neurons in {len(self.layers)} layers>"

    def renamed(self, name: str) -> "NeuronSet":
        out = _wrap(self._items)
        object.__setattr__(out, "name", name)
        return out

    @property
    def layers(self) -> list[int]:
        return sorted({n.layer for n in self._items})

    @property
    def sites(self) -> list[str]:
        return sorted({n.site for n in self._items})

    def per_layer_counts(self, site: str | None = None) -> dict[int, int]:
        """Number of neurons in each layer (only layers that have any), optionally for one site."""
        counts = Counter(n.layer for n in self._items if site is None or n.site == site)
        return dict(sorted(counts.items()))

    def grouped(self) -> dict[tuple[int, str], np.ndarray]:
        """{(layer, site): sorted int64 indices}."""
        groups: dict[tuple[int, str], list[int]] = defaultdict(list)
        for n in self._items:
            groups[(n.layer, n.site)].append(n.index)
        return {key: np.array(sorted(v), dtype=np.int64) for key, v in sorted(groups.items())}

    def validate(self, arch: Architecture) -> "NeuronSet":
        """Raise NeuronSetError naming the first neuron that does not exist in a model of ``arch``."""
        for n in self:
            if n.site not in arch.sites:
                known = ", ".join(arch.sites) if arch.sites else ", ".join(SITES)
                raise NeuronSetError(f"neuron {tuple(n)}: unknown site {n.site!r} (known: {known})")
            if not 0 <= n.layer < arch.n_layers:
                raise NeuronSetError(f"neuron {tuple(n)}: layer out of range (model has {arch.n_layers} layers: "
                                     f"0-{arch.n_layers - 1}); is the set for another model?")
            size = arch.sites[n.site].size
            if not 0 <= n.index < size:
                raise NeuronSetError(f"neuron {tuple(n)}: index out of range ({n.site} has {size} neurons per layer: "
                                     f"0-{size - 1}); is the set for another model?")
        return self

    # ---- IO -------------------------------------------------------------------------------------
    def to_json(self, **meta) -> dict:
        """{"format", "name", "count", "neurons": {site: {layer: [index, ...]}}, **meta}."""
        neurons: dict[str, dict[str, list[int]]] = defaultdict(dict)
        for (layer, site), idx in self.grouped().items():
            neurons[site][str(layer)] = idx.tolist()
        return {"format": FORMAT, "name": self.name, "count": len(self), "neurons": dict(neurons), **meta}

    @classmethod
    def from_json(cls, data, name: str = "") -> "NeuronSet":
        """Read ``to_json`` output, or a plain list of [layer, site, index] / {"layer", "site", "index"}."""
        if isinstance(data, list):
            return cls(_listed(data), name=name)
        if not isinstance(data, dict) or not isinstance(data.get("neurons"), (dict, list)):
            found = "it has no \"neurons\" field" if isinstance(data, dict) else f"not {json_kind(data)}"
            raise NeuronSetError('a neuron set is {"neurons": {site: {layer: [indices]}}} or a list of '
                                 f"[layer, site, index] ({found})")
        name = set_name(data.get("name", name)) or name
        if isinstance(data["neurons"], list):
            return cls(_listed(data["neurons"]), name=name)
        items = []
        for site, layers in data["neurons"].items():
            if not isinstance(layers, dict):
                raise NeuronSetError(f"site {site!r}: expected {{layer: [indices]}}, not {json_kind(layers)}")
            for layer, indices in layers.items():
                where = f"site {site!r}, layer {layer!r}"
                if not isinstance(indices, list):
                    raise NeuronSetError(f"{where}: expected a list of indices, not {json_kind(indices)}")
                items.extend((whole_number(layer, f"site {site!r}: layer", key=True), site,
                              whole_number(i, f"{where}: index"))
                             for i in indices)
        return cls(items, name=name)

    def save(self, path: str | Path, **meta) -> Path:
        return write_atomic(path, json.dumps(self.to_json(**meta), indent=1))

    def to_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """{f"{prefix}{site}": int64 [n, 2] of (layer, index)} for safetensors."""
        rows: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for n in self:
            rows[n.site].append((n.layer, n.index))
        return {f"{prefix}{site}": torch.tensor(r, dtype=torch.int64).reshape(-1, 2) for site, r in rows.items()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str = "", name: str = "") -> "NeuronSet":
        items = []
        for key, t in tensors.items():
            if key.startswith(prefix):
                site = key[len(prefix):]
                items.extend((int(layer), site, int(index)) for layer, index in t.reshape(-1, 2).tolist())
        return cls(items, name=name)


def random_like(neurons: NeuronSet, arch: Architecture, seed: int = 0) -> NeuronSet:
    """Random neurons with the same count in every (layer, site) as ``neurons`` (a control set)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for (layer, site), idx in neurons.grouped().items():
        pick = torch.randperm(arch.sites[site].size, generator=gen)[:len(idx)]
        out.extend((layer, site, int(i)) for i in pick)
    return NeuronSet(out, name=f"random-like-{neurons.name or 'set'}-{seed}")


def random_per_layer(arch: Architecture, count: int, site: str = "mlp", seed: int = 0) -> NeuronSet:
    """``count`` random neurons of ``site`` in every layer (seeded)."""
    every = NeuronSet((layer, site, i) for layer in range(arch.n_layers) for i in range(count))
    return random_like(every, arch, seed).renamed(f"random-{count}-per-layer-{seed}")


def _listed(items: list) -> list[Neuron]:
    """Neurons from a file's list of [layer, site, index] or {"layer", "site", "index"} entries."""
    out = []
    for number, entry in enumerate(items, 1):
        item = [entry.get(k) for k in Neuron._fields] if isinstance(entry, dict) else entry
        if isinstance(entry, dict) and "neurons" in entry:
            raise NeuronSetError(f"entry {number} is a neuron set, not a neuron; a file of several sets is "
                                 '{"sets": {NAME: {"neurons": ...}, ...}}, not a list')
        if not isinstance(item, list) or len(item) != 3 or not isinstance(item[1], str):
            raise NeuronSetError(f"entry {number}: {shown(entry)} is not a [layer, site, index] neuron")
        layer, site, index = item
        out.append(Neuron(whole_number(layer, f"entry {number}: layer"), site, whole_number(index, f"entry {number}: index")))
    return out


def _wrap(items: frozenset) -> NeuronSet:
    """A NeuronSet around already-validated neurons."""
    out = NeuronSet.__new__(NeuronSet)
    object.__setattr__(out, "_items", items)
    object.__setattr__(out, "name", "")
    return out


def _read_set(data, name: str, where: str, arch: Architecture | None) -> NeuronSet:
    """``NeuronSet.from_json`` (then ``validate`` with an ``arch``), errors prefixed by ``where``."""
    try:
        neurons = NeuronSet.from_json(data, name=name)
        return neurons if arch is None else neurons.validate(arch)
    except NeuronSetError as e:
        raise NeuronSetError(f"{where}: {e}") from None


def read_neuron_sets(content: str | bytes, source: str = "upload.json",
                     arch: Architecture | None = None) -> dict[str, NeuronSet]:
    """{name: NeuronSet} from a JSON file's content: one set (named by its "name" or the file stem), or
    {"sets": {name: set}}; with ``arch``, every neuron must exist in such a model. Raises NeuronSetError,
    whose message names ``source`` (and the set) once and says what is wrong."""
    data = parse_json(content, source)
    sets = named_sets(data, source)
    if sets is None:
        one = _read_set(data, Path(source).stem, source, arch)
        return {one.name: one}
    if not sets:
        raise NeuronSetError(f'{source}: holds no neuron sets ("sets" is empty); a neuron set file is {SCHEMA}')
    return {name: _read_set(s, name, f"{source}, set {name!r}", arch) for name, s in sets.items()}


def neuron_sets_json(sets: dict[str, NeuronSet]) -> str:
    """{"sets": {name: set}}: the layout of a scan's neurons.json, read back by ``read_neuron_sets`` and
    by ``load_neuron_set("FILE#name")``."""
    return json.dumps({"sets": {name: s.to_json() for name, s in sets.items()}}, indent=1)


def load_neuron_set(ref: str | Path) -> NeuronSet:
    """Load ``FILE`` or ``FILE#key``; with a key, FILE holds {"sets": {key: neuron set}}."""
    path_s, _, key = str(ref).partition("#")
    path = Path(path_s)
    if not path.is_file():
        raise NeuronSetError(f"neuron set file not found: {path}")
    try:
        data = parse_json(path.read_bytes(), str(path))
    except OSError as e:
        raise NeuronSetError(f"{path}: cannot read the file ({e.strerror or e})") from None
    sets = named_sets(data, str(path))
    if key:
        if sets is None:
            raise NeuronSetError(f"{path}: no neuron set named {key!r}: the file holds one set; name the file "
                                 "without #KEY")
        if key not in sets:
            available = ", ".join(sets) if sets else "none"
            raise NeuronSetError(f"{path}: no neuron set named {key!r} (available: {available})")
        return _read_set(sets[key], key, f"{path}, set {key!r}", None)
    if sets is not None:
        raise NeuronSetError(f"{path} holds several sets; name one by adding #KEY (keys: {', '.join(sets)})")
    return _read_set(data, path.stem, str(path), None)


MAX_TYPED_NEURONS = 1_000_000  # typed neurons past this are refused before anything is built (use a set file)
MAX_TYPED_CHARS = 200_000  # about 40,000 typed numbers
_PART = re.compile(r"([0-9]+)(?:-([0-9]*))?")  # N, N-M or N- (N alone)


def _spans(entry: str, token: str, what: str, size: int | None) -> list[tuple[int, int]]:
    """``token`` (a comma list of numbers, ranges a-b and * for all of 0..size-1) as merged [low, high) spans,
    checked against ``size`` (None: no bound known) before anything is expanded."""
    spans = []
    for part in filter(None, token.split(",")):
        if part == "*":
            if size is None:
                raise NeuronSetError(f"{entry!r}: '*' needs the model's shape; write numbers or ranges a-b")
            spans.append((0, size))
            continue
        m = _PART.fullmatch(part)
        if m is None:
            raise NeuronSetError(f"{entry!r}: {part[:40]!r} is not {'an' if what == 'index' else 'a'} {what} (layers and indices are numbers, "
                                 "ranges a-b or *; numbers are whole and count from 0)")
        low, high = (int(d) if len(d) < 19 else 10 ** 18 for d in (m[1], m[2] or m[1]))
        if high < low:
            raise NeuronSetError(f"{entry!r}: the range {part!r} runs backwards; write {high}-{low}")
        if size is not None and high >= size:
            bounds = f"the model has {size} layers: 0-{size - 1}" if what == "layer" else \
                f"{size} neurons per layer: 0-{size - 1}"
            raise NeuronSetError(f"{entry!r}: {what} out of range in {part!r} ({bounds})")
        spans.append((low, high + 1))
    merged: list[tuple[int, int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def parse_neurons(text: str, arch: Architecture | None = None) -> NeuronSet:
    """Typed neurons: ``LAYERS SITE INDICES`` entries split by ';' or new lines, where LAYERS and INDICES
    are comma lists of numbers, ranges ``a-b`` and ``*`` (all): e.g. ``3 mlp 17,20; 0-1 mlp *``.
    Layers and indices are checked against ``arch`` (None: any site name, no ``*``) and the total against
    MAX_TYPED_NEURONS before anything is expanded. Raises NeuronSetError naming the entry."""
    if len(text) > MAX_TYPED_CHARS:
        raise NeuronSetError(f"the typed neurons are {len(text):,} characters long, more than the "
                             f"{MAX_TYPED_CHARS:,} accepted; write ranges a-b, or load a neuron set file")
    sites = arch.sites if arch is not None else SITES
    parsed, total = [], 0
    for raw in filter(str.strip, re.split(r"[;\n]", text)):
        entry = raw.strip()[:80]  # the entry as messages quote it
        parts = raw.split(None, 2)
        if len(parts) != 3 or parts[1] not in sites:
            raise NeuronSetError(f"{entry!r}: write LAYERS SITE INDICES with SITE one of "
                                 f"{', '.join(sites)}, e.g. '3 mlp 17,20' or '0-1 mlp *'")
        layers, site, indices = parts
        if re.search(r"[0-9]\s+[0-9]", indices):
            raise NeuronSetError(f"{entry!r}: numbers separated by a space; separate them with commas")
        layer_spans = _spans(entry, layers, "layer", arch.n_layers if arch is not None else None)
        index_spans = _spans(entry, re.sub(r"\s+", "", indices), "index",
                             arch.sites[site].size if arch is not None else None)
        total += sum(h - lo for lo, h in layer_spans) * sum(h - lo for lo, h in index_spans)
        if total > MAX_TYPED_NEURONS:
            raise NeuronSetError(f"{entry!r}: the typed neurons come to more than {MAX_TYPED_NEURONS:,}, the most "
                                 "a typed list may hold; choose fewer, or load a neuron set file")
        parsed.append((layer_spans, site, index_spans))
    neurons = NeuronSet((layer, site, i) for layer_spans, site, index_spans in parsed
                        for lo, hi in layer_spans for layer in range(lo, hi)
                        for a, b in index_spans for i in range(a, b))
    return neurons.validate(arch) if arch is not None else neurons
