"""Overlap math: exclusive regions, Jaccard (whole and per layer) and per-layer counts against brute force."""
import math
from itertools import combinations

import pandas as pd
import pytest

from neuronlab import NeuronSet
from neuronlab.analysis.overlap import (
    counts_by_layer,
    exclusive_regions,
    jaccard,
    jaccard_by_layer,
    jaccard_matrix,
    named_regions,
)
from neuronlab.analysis.scan import SafetyNeurons
from tests.support.builders import EN, KO, SMALL, ZH, brute_regions, random_sets


def test_exclusive_regions_by_hand():
    assert exclusive_regions(SMALL) == {
        frozenset({"en"}): 1, frozenset({"zh"}): 1, frozenset({"ko"}): 1,
        frozenset({"en", "zh"}): 1, frozenset({"en", "ko"}): 1, frozenset({"zh", "ko"}): 0,
        frozenset({"en", "zh", "ko"}): 1,
    }
    assert list(exclusive_regions(SMALL))[:3] == [frozenset({"en"}), frozenset({"zh"}), frozenset({"ko"})]
    assert exclusive_regions(SMALL, include_empty=False) == {
        k: v for k, v in exclusive_regions(SMALL).items() if v}


@pytest.mark.parametrize("n_langs", [3, 4, 5, 6])
def test_exclusive_regions_match_brute_force(n_langs):
    sets = random_sets(seed=n_langs, n_langs=n_langs)
    regions = exclusive_regions(sets)
    assert regions == brute_regions(sets)
    assert len(regions) == 2 ** n_langs - 1
    assert sum(regions.values()) == len(set().union(*sets.values()))


def test_jaccard():
    assert jaccard(EN, ZH) == pytest.approx(2 / 5)
    assert jaccard(EN, KO) == jaccard(KO, EN) == pytest.approx(2 / 5)
    assert jaccard(ZH, KO) == pytest.approx(1 / 5)
    assert jaccard(EN, EN) == 1.0 and jaccard(NeuronSet(), NeuronSet()) == 0.0 and jaccard(EN, NeuronSet()) == 0.0

    matrix = jaccard_matrix({**SMALL, "th": NeuronSet()})
    assert list(matrix.index) == list(matrix.columns) == ["en", "zh", "ko", "th"]
    assert matrix.loc["zh", "ko"] == matrix.loc["ko", "zh"] == pytest.approx(1 / 5)
    assert matrix.loc["en", "en"] == 1.0 and matrix.loc["th", "th"] == 0.0


def test_jaccard_by_layer_by_hand():
    table = jaccard_by_layer(SMALL, n_layers=5)
    assert list(table.columns) == ["en–zh", "en–ko", "zh–ko"] and list(table.index) == [0, 1, 2, 3, 4]
    # layer 0: en {1,2} zh {2} ko {2}; layer 1: en {5} zh {5,6}; layer 2: en, ko {q3}; layer 3: ko {0}
    expected = {
        "en–zh": [1 / 2, 1 / 2, 0.0, math.nan, math.nan],
        "en–ko": [1 / 2, 0.0, 1.0, 0.0, math.nan],
        "zh–ko": [1.0, 0.0, 0.0, 0.0, math.nan],
    }
    pd.testing.assert_frame_equal(table, pd.DataFrame(expected, index=table.index), check_names=False)


def test_jaccard_by_layer_matches_whole_set_jaccard():
    sets = random_sets(seed=7, n_langs=4)
    table = jaccard_by_layer(sets, n_layers=6)
    for a, b in combinations(sets, 2):
        for layer in range(6):
            sa = NeuronSet(n for n in sets[a] if n.layer == layer)
            sb = NeuronSet(n for n in sets[b] if n.layer == layer)
            value = table.loc[layer, f"{a}–{b}"]
            assert math.isnan(value) if not (sa or sb) else value == pytest.approx(jaccard(sa, sb))


def test_counts_by_layer():
    sets = random_sets(seed=3, n_langs=5)
    table = counts_by_layer(sets, n_layers=8)
    assert table.shape == (8, 5) and list(table.columns) == list(sets)
    for name, s in sets.items():
        assert table[name].to_dict() == {layer: s.per_layer_counts().get(layer, 0) for layer in range(8)}
    assert counts_by_layer(SMALL, 4).loc[:, "ko"].tolist() == [1, 0, 1, 1]


def test_layer_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="outside layers 0..2"):
        counts_by_layer(SMALL, n_layers=3)
    with pytest.raises(ValueError, match="outside layers"):
        jaccard_by_layer(SMALL, n_layers=3)


def test_named_regions_are_the_set_algebra_of_the_chosen_languages():
    ms = {"en": EN, "zh": ZH, "ko": KO}
    safety = SafetyNeurons(ms, {"zh": EN & ZH, "ko": EN & KO}, EN & ZH & KO, 0.03, "en", 100)
    regions = {name: neurons for name, (_, neurons) in named_regions(safety, ["en", "zh"]).items()}
    assert regions["only-en"] == EN - ZH and regions["only-zh"] == ZH - EN
    assert regions["and-en-zh"] == EN & ZH and regions["or-en-zh"] == EN | ZH
    assert regions["ss-ko"] == EN & KO and regions["shared"] == EN & ZH & KO
