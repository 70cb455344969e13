"""Scores: the per-site [layers, neurons] type and its selectors, against brute-force references."""
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuronlab import NeuronSet
from neuronlab.neurons.scores import Scores, ScoresError

SITE_NAMES = ("mlp", "attn_v", "attn_o")
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_top(scores, count=None, fraction=None, within=None) -> NeuronSet:
    """Brute force: every candidate in (site, layer, index) order, sorted by score, highest first (stable)."""
    entries = [(float(v), layer, site, int(i)) for site, t in scores.items()
               for layer, row in enumerate(t) for i, v in enumerate(row.tolist())
               if within is None or (layer, site, i) in within]
    if count is None:
        total = sum(t.numel() for t in scores.values()) if within is None else len(within)
        count = len(entries) if fraction is None else max(1, round(fraction * total))
    entries.sort(key=lambda e: -e[0])
    return NeuronSet((layer, site, i) for _, layer, site, i in entries[:count])


def reference_top_per_layer_values(scores, fraction) -> dict:
    """Brute force: {(layer, site): the sorted scores a per-layer top ``fraction`` must pick} (ties may go
    to any of the tied neurons; the picked scores may not differ)."""
    out = {}
    for site, t in scores.items():
        k = max(1, round(fraction * t.shape[1]))
        for layer, row in enumerate(t.tolist()):
            n = min(k, sum(1 for v in row if abs(v) != float("inf") and v == v))  # finite scores
            ranked = sorted((v if v == v else float("-inf") for v in row), reverse=True)
            out[(layer, site)] = sorted(ranked[:n])
    return out


@st.composite
def scores_strategy(draw, nan: bool = False):
    """Scores over 1–3 sites of different widths with few distinct values (many ties), ±0.0 and ±inf."""
    layers = draw(st.integers(1, 4))
    sites = draw(st.lists(st.sampled_from(SITE_NAMES), min_size=1, max_size=3, unique=True))
    pool = [0.0, -0.0, 1.0, -1.0, 2.5, 7.0, float("inf"), float("-inf")] + ([float("nan")] if nan else [])
    out = {}
    for site in sites:
        width = draw(st.integers(1, 9))
        values = draw(st.lists(st.sampled_from(pool) | st.floats(-3, 3, width=32), min_size=layers * width,
                               max_size=layers * width))
        out[site] = torch.tensor(values, dtype=torch.float32).view(layers, width)
    return Scores(out)


@st.composite
def within_strategy(draw, scores: Scores):
    """Neurons of the scored sites, plus some outside them (other sites, layers, indices)."""
    width = max(t.shape[1] for t in scores.values())
    neuron = st.tuples(st.integers(-1, scores.layers + 1), st.sampled_from(SITE_NAMES), st.integers(-1, width + 1))
    return NeuronSet(draw(st.lists(neuron, max_size=30)))


@PROPERTY
@given(st.data())
def test_top_matches_the_brute_force_order_with_ties(data):
    scores = data.draw(scores_strategy())
    count = data.draw(st.none() | st.integers(0, scores.size + 2))
    fraction = data.draw(st.floats(0.01, 1.0)) if count is None and data.draw(st.booleans()) else None
    within = data.draw(st.none() | within_strategy(scores))
    assert scores.top(count, fraction, within) == reference_top(scores, count, fraction, within)


@PROPERTY
@given(st.data())
def test_top_is_a_prefix_of_the_ranking(data):
    """Growing ``count`` only adds neurons (the transfer curve's steps are nested), ties included."""
    scores = data.draw(scores_strategy(nan=True))
    ks = sorted(data.draw(st.lists(st.integers(0, scores.size), min_size=2, max_size=4)))
    sets = [scores.top(count=k) for k in ks]
    assert [len(s) for s in sets] == ks
    assert all(a <= b for a, b in zip(sets, sets[1:]))


@PROPERTY
@given(st.data())
def test_top_per_layer_picks_the_brute_force_scores(data):
    scores = data.draw(scores_strategy(nan=True))
    fraction = data.draw(st.floats(0.01, 1.0))
    chosen = scores.top_per_layer(fraction)
    expected = reference_top_per_layer_values(scores, fraction)
    for (layer, site), values in expected.items():
        picked = sorted(float(scores[site][layer, n.index]) for n in chosen if (n.layer, n.site) == (layer, site))
        assert picked == values, (layer, site)
    assert all(not torch.isnan(scores[n.site][n.layer, n.index]) for n in chosen)


def test_top_per_layer_without_ties_is_exact_and_skips_nan():
    nan = float("nan")
    scores = Scores({"mlp": torch.tensor([[0.1, 5.0, 3.0, nan], [nan] * 4, [4.0, 3.0, 2.0, 1.0]]),
                     "attn_v": torch.tensor([[1.0, 2.0], [nan, 2.0], [0.0, -1.0]])})
    assert scores.top_per_layer(0.5) == NeuronSet([(0, "mlp", 1), (0, "mlp", 2), (2, "mlp", 0), (2, "mlp", 1),
                                                   (0, "attn_v", 1), (1, "attn_v", 1), (2, "attn_v", 0)])


def test_fractions_round_half_to_even_and_take_at_least_one():
    scores = Scores({"mlp": torch.arange(20.0).view(2, 10)})  # per layer, index 9 scores highest
    assert scores.top_per_layer(0.001).per_layer_counts() == {0: 1, 1: 1}  # round(0.01) = 0 -> 1
    assert scores.top_per_layer(0.25).per_layer_counts() == {0: 2, 1: 2}  # round(2.5) = 2
    assert scores.top_per_layer(0.35).per_layer_counts() == {0: 4, 1: 4}  # round(3.5) = 4
    assert scores.top_per_layer(1.0) == NeuronSet((layer, "mlp", i) for layer in (0, 1) for i in range(10))
    assert len(scores.top(fraction=0.001)) == 1 and len(scores.top(fraction=0.125)) == 2  # round(2.5) = 2
    assert scores.top(fraction=0.05) == NeuronSet([(1, "mlp", 9)])


def test_within_restricts_the_candidates_and_sets_the_fraction_base():
    scores = Scores({"mlp": torch.tensor([[9.0, 8.0, 7.0, 6.0], [5.0, 4.0, 3.0, 2.0]])})
    within = NeuronSet([(1, "mlp", 0), (1, "mlp", 3), (0, "mlp", 3), (0, "attn_v", 0), (7, "mlp", 0)])
    assert scores.top(within=within) == NeuronSet([(0, "mlp", 3), (1, "mlp", 0), (1, "mlp", 3)])
    assert scores.top(count=2, within=within) == NeuronSet([(0, "mlp", 3), (1, "mlp", 0)])
    assert scores.top(fraction=0.5, within=within) == NeuronSet([(0, "mlp", 3), (1, "mlp", 0)])  # 5 candidates
    assert scores.top(count=3, within=NeuronSet()) == NeuronSet()


def test_ties_go_to_the_earlier_site_then_layer_then_index_and_nan_ranks_last():
    nan = float("nan")
    scores = Scores({"attn_v": torch.tensor([[1.0, nan], [2.0, 2.0]]), "mlp": torch.tensor([[2.0, 2.0], [nan, 0.0]])})
    assert scores.top(count=1) == NeuronSet([(1, "attn_v", 0)])
    assert scores.top(count=3) == NeuronSet([(1, "attn_v", 0), (1, "attn_v", 1), (0, "mlp", 0)])
    assert scores.top(count=6) == NeuronSet([(1, "attn_v", 0), (1, "attn_v", 1), (0, "mlp", 0), (0, "mlp", 1),
                                             (0, "attn_v", 0), (1, "mlp", 1)])
    assert len(scores.top()) == 8  # NaN scores are still candidates, after every number
    zeros = Scores({"mlp": torch.tensor([[-0.0, 0.0, -0.0]])})
    assert scores.top(count=0) == NeuronSet() and zeros.top(count=2) == NeuronSet([(0, "mlp", 0), (0, "mlp", 1)])


def test_reads_like_the_dict_it_wraps():
    t, v = torch.rand(3, 5), torch.rand(3, 2)
    scores = Scores({"mlp": t, "attn_v": v})
    assert scores["mlp"] is t and list(scores) == ["mlp", "attn_v"] and len(scores) == 2 and "mlp" in scores
    assert dict(scores) == {"mlp": t, "attn_v": v} and scores.get("attn_o") is None
    assert scores.sites == ("mlp", "attn_v") and scores.layers == 3 and scores.size == 21
    assert repr(scores) == "Scores(mlp=[3, 5], attn_v=[3, 2])"
    assert Scores(scores) == scores == {"attn_v": v.clone(), "mlp": t.clone()}
    assert scores != Scores({"mlp": t}) and scores != Scores({"mlp": t, "attn_v": v + 1}) and scores != 3
    assert pickle.loads(pickle.dumps(scores)) == scores
    assert Scores({}).layers == 0 and Scores({}).top(fraction=0.5) == NeuronSet() == Scores({}).top_per_layer(1)
    with pytest.raises(AttributeError):
        scores.by_site = {}
    with pytest.raises(TypeError):
        hash(scores)


@pytest.mark.parametrize("by_site, problem", [
    ({"mlp": torch.rand(4)}, r"'mlp' must be a \[layers, neurons\] tensor, got \(4,\)"),
    ({"mlp": torch.rand(2, 3, 4)}, r"got \(2, 3, 4\)"),
    ({"mlp": [[1.0, 2.0]]}, "got list"),
    ({"mlp": torch.rand(2, 3), "attn_v": torch.rand(3, 3)}, r"same number of layers, got \{'mlp': 2, 'attn_v': 3\}"),
    ({0: torch.rand(2, 3)}, "keyed by site name, got 0"),
])
def test_malformed_scores_are_refused(by_site, problem):
    with pytest.raises(ScoresError, match=problem):
        Scores(by_site)


@pytest.mark.parametrize("call, problem", [
    (lambda s: s.top_per_layer(0), r"fraction in \(0, 1\], got 0"),
    (lambda s: s.top_per_layer(1.5), r"got 1.5"),
    (lambda s: s.top(count=2, fraction=0.5), "count or fraction, not both"),
    (lambda s: s.top(count=-1), "got -1"),
    (lambda s: s.top(fraction=0.0), r"in \(0, 1\], got 0.0"),
])
def test_selections_that_ask_for_nothing_sensible_are_refused(call, problem):
    with pytest.raises(ScoresError, match=problem):
        call(Scores({"mlp": torch.rand(2, 3)}))
    assert issubclass(ScoresError, ValueError)  # front ends report it plainly
