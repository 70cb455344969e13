"""Cross-lingual overlap of neuron sets: Venn/UpSet regions, Jaccard similarity, per-layer counts.

Every function takes ``sets``: a mapping from a name (usually a language code) to a NeuronSet. Results
keep the mapping's order of names. Pure set math; nothing here touches a model.
"""
from __future__ import annotations

import functools
import operator
from collections import Counter, defaultdict
from collections.abc import Mapping
from itertools import combinations

import numpy as np
import pandas as pd

from neuronlab.analysis.scan import SafetyNeurons
from neuronlab.neurons.sets import Neuron, NeuronSet

PAIR_SEP = "–"  # en dash: pair labels read "en–zh"


def exclusive_regions(sets: Mapping[str, NeuronSet], include_empty: bool = True) -> dict[frozenset[str], int]:
    """{names: number of neurons in exactly those sets} for every non-empty combination of names.

    These are the Venn/UpSet regions: disjoint, so the counts sum to the size of the union. Keys are
    ordered by combination size, then by the order of ``sets``. With ``include_empty=False`` only regions
    that hold neurons are listed (use it for many sets: there are 2**len(sets) - 1 combinations).
    """
    names = list(sets)
    membership: defaultdict[Neuron, int] = defaultdict(int)  # neuron -> bit mask of the sets holding it
    for bit, name in enumerate(names):
        for neuron in sets[name]:
            membership[neuron] |= 1 << bit
    by_mask = Counter(membership.values())
    if include_empty:
        masks = [sum(1 << bit for bit in combo)
                 for k in range(1, len(names) + 1) for combo in combinations(range(len(names)), k)]
    else:
        masks = sorted(by_mask, key=lambda m: (m.bit_count(), [b for b in range(len(names)) if m >> b & 1]))
    return {frozenset(names[b] for b in range(len(names)) if m >> b & 1): by_mask.get(m, 0) for m in masks}


def jaccard(a: NeuronSet, b: NeuronSet) -> float:
    """|a ∩ b| / |a ∪ b|; 0.0 when both sets are empty."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def jaccard_matrix(sets: Mapping[str, NeuronSet]) -> pd.DataFrame:
    """Names × names Jaccard similarity (symmetric; the diagonal is 1, or 0 for an empty set)."""
    names = list(sets)
    values = [[jaccard(sets[r], sets[c]) for c in names] for r in names]
    return pd.DataFrame(values, index=pd.Index(names, name="set"), columns=pd.Index(names, name="set"))


def pair_label(a: str, b: str) -> str:
    """Column label of a pair of sets, e.g. "en–zh"."""
    return f"{a}{PAIR_SEP}{b}"


def _by_layer(s: NeuronSet, n_layers: int) -> dict[int, set]:
    layers: dict[int, set] = defaultdict(set)
    for neuron in s:
        if not 0 <= neuron.layer < n_layers:
            raise ValueError(f"neuron {tuple(neuron)} is outside layers 0..{n_layers - 1}")
        layers[neuron.layer].add(neuron)
    return layers


def jaccard_by_layer(sets: Mapping[str, NeuronSet], n_layers: int) -> pd.DataFrame:
    """Per-layer Jaccard of every pair of sets: rows = layers 0..n_layers-1, columns = "en–zh" labels.

    A layer where neither set of a pair has neurons is NaN (undefined), not 0, so "no overlap" and
    "nothing to compare" stay apart. Pairs follow the order of ``sets``.
    """
    layered = {name: _by_layer(s, n_layers) for name, s in sets.items()}
    columns = {}
    for a, b in combinations(sets, 2):
        column = np.full(n_layers, np.nan)  # [layers]
        for layer in layered[a].keys() | layered[b].keys():
            sa, sb = layered[a].get(layer, set()), layered[b].get(layer, set())
            column[layer] = len(sa & sb) / len(sa | sb)
        columns[pair_label(a, b)] = column
    return pd.DataFrame(columns, index=pd.RangeIndex(n_layers, name="layer"), columns=list(columns), dtype=float)


def counts_by_layer(sets: Mapping[str, NeuronSet], n_layers: int) -> pd.DataFrame:
    """Number of neurons per layer (rows 0..n_layers-1) in each set (columns, in the order of ``sets``)."""
    counts = {}
    for name, s in sets.items():
        column = np.zeros(n_layers, dtype=np.int64)  # [layers]
        for layer, layer_set in _by_layer(s, n_layers).items():
            column[layer] = len(layer_set)
        counts[name] = column
    return pd.DataFrame(counts, index=pd.RangeIndex(n_layers, name="layer"), columns=list(sets), dtype=np.int64)


def named_regions(safety: SafetyNeurons, langs: list[str]) -> dict[str, tuple[str, NeuronSet]]:
    """The regions of a scan's sets a user can save, as {set name: (description, neurons)}: SS per language, the
    shared set, each language's MS alone, and the intersection and union of ``langs`` (two or more)."""
    ms = {lang: safety.ms[lang] for lang in langs}
    joined = "-".join(langs)
    out = {f"ss-{lang}": (f"SS-{lang} = MS({safety.high_resource}) ∩ MS({lang})", s) for lang, s in safety.ss.items()}
    out["shared"] = ("shared: in every scanned language's MS", safety.shared)
    for lang, s in ms.items():
        others = functools.reduce(operator.or_, (o for other, o in ms.items() if other != lang))
        out[f"only-{lang}"] = (f"MS({lang}) only: in none of the other chosen languages", s - others)
    out[f"and-{joined}"] = (f"intersection of {', '.join(langs)}", functools.reduce(operator.and_, ms.values()))
    out[f"or-{joined}"] = (f"union of {', '.join(langs)}", functools.reduce(operator.or_, ms.values()))
    return out
