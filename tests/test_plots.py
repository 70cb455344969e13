"""Plot builders: the numbers read back from each figure equal those of the sets and scores drawn."""
import math
import time

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from neuronlab import NeuronSet
from neuronlab.plots import (counts_by_language_figure, evaluation_figure, jaccard_figure, jaccard_matrix_figure,
                             score_heatmap, upset_figure, venn_figure)
from neuronlab.evaluation import Rate, results_table
from test_evaluation import fake_result
from test_overlap import SMALL, brute_regions, random_sets


# ---- score heatmap --------------------------------------------------------------------------------
def test_heatmap_bins_keep_largest_magnitude_with_sign_and_name_the_range():
    rng = np.random.default_rng(0)
    scores = rng.uniform(-1, 1, size=(3, 4096))  # [layers, neurons]
    scores[1, 100] = -5.0  # in bin 6 = neurons 96..111 (4096 / 256 = 16 per bin)
    scores[1, 97] = 4.0
    trace = score_heatmap(scores).data[0]
    z = np.asarray(trace.z)
    assert z.shape == (3, 256)
    assert z[1, 6] == -5.0
    assert "neurons 96–111" in trace.customdata[1][6] and "%{customdata}" in trace.hovertemplate
    assert "neurons 4080–4095" in trace.customdata[0][255]
    assert np.asarray(trace.x)[6] == pytest.approx((96 + 111) / 2)
    assert list(trace.y) == [0, 1, 2]
    for layer in range(3):
        for b in range(256):
            block = scores[layer, 16 * b:16 * (b + 1)]
            assert z[layer, b] == block[np.abs(block).argmax()]


def test_heatmap_uneven_bins_torch_input_and_no_binning():
    scores = torch.randn(4, 1000, generator=torch.Generator().manual_seed(1))
    trace = score_heatmap(scores, max_bins=256).data[0]
    z = np.asarray(trace.z)
    assert z.shape[1] <= 256 and z.shape == (4, 250)  # 4 neurons per bin
    assert "neurons 996–999" in trace.customdata[0][-1]
    assert np.allclose(z, np.asarray(score_heatmap(scores.numpy()).data[0].z))

    small = score_heatmap(scores[:, :10], site_label="attn_o channel", title="o_proj").data[0]
    assert np.allclose(np.asarray(small.z), scores[:, :10].numpy())
    assert small.customdata[0][3] == "attn_o channel 3"
    assert small.zmid == 0 and small.colorscale[0][1] != small.colorscale[-1][1]


def test_heatmap_sizes_and_speed():
    assert np.asarray(score_heatmap(np.zeros((30, 1536))).data[0].z).shape == (30, 256)
    big = np.random.default_rng(2).standard_normal((32, 14336)).astype(np.float32)
    start = time.perf_counter()
    fig = score_heatmap(big)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"32 × 14336 heatmap took {elapsed:.2f} s"
    assert np.asarray(fig.data[0].z).shape == (32, 256)
    assert np.asarray(score_heatmap(big, max_bins=100).data[0].z).shape[1] <= 100
    with pytest.raises(ValueError, match="layers, neurons"):
        score_heatmap(np.zeros(10))


# ---- counts and Jaccard ---------------------------------------------------------------------------
def test_counts_figure_bars_equal_per_layer_counts():
    sets = random_sets(seed=11, n_langs=4)
    fig = counts_by_language_figure(sets, n_layers=6)
    assert [t.name for t in fig.data] == list(sets) and fig.layout.barmode == "group"
    for trace in fig.data:
        assert list(trace.x) == list(range(6))
        counts = sets[trace.name].per_layer_counts()
        assert list(trace.y) == [counts.get(layer, 0) for layer in range(6)]


def test_jaccard_figure_by_hand():
    trace = jaccard_figure(SMALL, n_layers=5).data[0]
    assert list(trace.x) == ["en–zh", "en–ko", "zh–ko"] and list(trace.y) == [0, 1, 2, 3, 4]
    expected = np.array([[1 / 2, 1 / 2, 1.0], [1 / 2, 0.0, 0.0], [0.0, 1.0, 0.0], [np.nan, 0.0, 0.0],
                         [np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(np.asarray(trace.z, dtype=float), expected)
    assert (trace.zmin, trace.zmax) == (0, 1)
    assert trace.customdata[0][2] == "1.000" and trace.customdata[4][0] == "no neurons in either set"
    with pytest.raises(ValueError, match="two sets"):
        jaccard_figure({"en": SMALL["en"]}, n_layers=5)


def test_jaccard_matrix_figure_by_hand():
    trace = jaccard_matrix_figure(SMALL).data[0]
    assert list(trace.x) == list(trace.y) == ["en", "zh", "ko"]
    expected = [[1, 2 / 5, 2 / 5], [2 / 5, 1, 1 / 5], [2 / 5, 1 / 5, 1]]
    np.testing.assert_allclose(np.asarray(trace.z, dtype=float), expected)
    assert trace.texttemplate and trace.customdata[1][2] == "|∩| = 1, |∪| = 5"


# ---- Venn and UpSet -------------------------------------------------------------------------------
def venn_regions(fig: go.Figure) -> dict[frozenset, int]:
    return {frozenset(a.name.removeprefix("region:").split("&")): int(a.text)
            for a in fig.layout.annotations if a.name.startswith("region:")}


@pytest.mark.parametrize("sets", [
    SMALL, {"en": SMALL["en"], "zh": SMALL["zh"]}, random_sets(seed=5, n_langs=3),
    dict(list(random_sets(seed=6, n_langs=4).items())[1:3]), {"en": NeuronSet(), "zh": NeuronSet()},
], ids=["small-3", "small-2", "random-3", "random-2", "empty-2"])
def test_venn_counts_equal_brute_force_regions(sets):
    fig = venn_figure(sets)
    expected = brute_regions(sets)
    assert venn_regions(fig) == expected
    assert {frozenset(r["sets"]): r["count"] for r in fig.layout.meta["regions"]} == expected
    assert len(fig.layout.shapes) == len(sets) and all(s.type == "circle" for s in fig.layout.shapes)
    labels = {a.name: a.text for a in fig.layout.annotations if a.name.startswith("set:")}
    assert labels == {f"set:{n}": f"<b>{n}</b> ({len(s)})" for n, s in sets.items()}
    assert all(a.hovertext for a in fig.layout.annotations)


def test_venn_region_labels_sit_inside_their_regions():
    fig = venn_figure(SMALL)
    circles = [((s.x0 + s.x1) / 2, (s.y0 + s.y1) / 2, (s.x1 - s.x0) / 2) for s in fig.layout.shapes]
    for a in fig.layout.annotations:
        if a.name.startswith("region:"):
            inside = {name for name, (cx, cy, r) in zip(SMALL, circles) if math.hypot(a.x - cx, a.y - cy) < r}
            assert inside == set(a.name.removeprefix("region:").split("&"))


@pytest.mark.parametrize("n", [1, 4])
def test_venn_needs_two_or_three_sets(n):
    with pytest.raises(ValueError, match="2 or 3 sets"):
        venn_figure(random_sets(seed=0, n_langs=n))


def upset_parts(fig: go.Figure):
    """(bars, set-size bars, the set names of each column's filled dots); checks the connecting lines."""
    bars, sizes, _, lines, dots = fig.data
    ticks = dict(zip(fig.layout.yaxis3.tickvals, fig.layout.yaxis3.ticktext))
    columns = [set() for _ in bars.y]
    rows: list[list[int]] = [[] for _ in bars.y]
    for x, y in zip(dots.x, dots.y):
        columns[x].add(ticks[y])
        rows[x].append(y)
    segments = {lines.x[i]: sorted(lines.y[i:i + 2]) for i in range(0, len(lines.x), 3)}
    assert segments == {x: [min(r), max(r)] for x, r in enumerate(rows)}
    return bars, sizes, columns


@pytest.mark.parametrize("n_langs", [2, 3, 5, 6])
def test_upset_bars_equal_exclusive_regions(n_langs):
    sets = random_sets(seed=20 + n_langs, n_langs=n_langs)
    fig = upset_figure(sets)
    bars, sizes, columns = upset_parts(fig)
    regions = {r: c for r, c in brute_regions(sets).items() if c}
    heights = list(bars.y)
    assert heights == sorted(heights, reverse=True)
    assert len(heights) == min(30, len(regions))
    shown = {frozenset(c): h for c, h in zip(columns, heights)}
    assert all(regions[r] == h for r, h in shown.items())  # each bar is the exact size of its dots' region
    assert sorted(regions.values(), reverse=True)[:len(heights)] == heights  # and the largest ones are drawn
    assert [frozenset(i["sets"]) for i in fig.layout.meta["intersections"]] == [frozenset(c) for c in columns]
    assert dict(zip(sizes.y, sizes.x)) == {v: len(sets[t]) for v, t in zip(fig.layout.yaxis3.tickvals,
                                                                              fig.layout.yaxis3.ticktext)}


def test_upset_small_by_hand_and_truncation():
    fig = upset_figure(SMALL, max_intersections=4)
    bars, _, columns = upset_parts(fig)
    assert list(bars.y) == [1, 1, 1, 1] and fig.layout.meta["total_intersections"] == 6
    assert columns == [{"en"}, {"zh"}, {"ko"}, {"en", "zh"}]  # ties keep exclusive_regions' order
    assert "4 largest of 6" in fig.layout.xaxis3.title.text
    assert fig.layout.meta["sizes"] == {"en": 4, "zh": 3, "ko": 3}


# ---- common to all figures ------------------------------------------------------------------------
FIGURES = {
    "heatmap": lambda: score_heatmap(np.ones((2, 8))),
    "counts": lambda: counts_by_language_figure(SMALL, 4),
    "jaccard": lambda: jaccard_figure(SMALL, 4),
    "jaccard_matrix": lambda: jaccard_matrix_figure(SMALL),
    "venn": lambda: venn_figure(SMALL),
    "upset": lambda: upset_figure(SMALL),
}


@pytest.mark.parametrize("name", FIGURES)
def test_figures_have_titles_axis_titles_and_hover(name):
    fig = FIGURES[name]()
    assert isinstance(fig, go.Figure) and fig.layout.title.text
    axes = [fig.layout[k] for k in fig.layout if k.startswith(("xaxis", "yaxis"))]
    for axis in axes:
        unlabelled = axis.visible is False or axis.showticklabels is False
        assert unlabelled or axis.title.text or axis.ticktext, f"{name}: untitled axis"
    for trace in fig.data:
        assert trace.hoverinfo == "skip" or trace.hovertemplate or trace.hovertext, f"{name}: {trace.name} no hover"


def test_heatmap_per_layer_scaling_keeps_raw_scores_in_the_hover():
    scores = np.array([[1.0, -2.0, 0.5, 0.0], [100.0, 50.0, -25.0, 0.0]])  # [layers, neurons]
    trace = score_heatmap(scores, per_layer=True).data[0]
    assert np.allclose(np.asarray(trace.z), [[0.5, -1.0, 0.25, 0.0], [1.0, 0.5, -0.25, 0.0]])
    assert trace.text[1][0] == "100" and trace.text[0][1] == "-2"
    raw = score_heatmap(scores).data[0]
    assert np.allclose(np.asarray(raw.z), scores)


# ---- evaluation -----------------------------------------------------------------------------------
def test_evaluation_figure_groups_variants_with_their_intervals():
    table = results_table({"plain": fake_result(2, 0), "patched": fake_result(9, 1)})
    fig = evaluation_figure(table)
    refusal = [t for t in fig.data if t.xaxis == "x"]
    assert [t.name for t in refusal] == ["plain", "patched"] and fig.layout.barmode == "group"
    patched = refusal[1]
    assert list(patched.x) == ["en harmful", "en harmless", "zh harmful", "zh harmless"]
    assert list(patched.y) == [0.9, 0.1, 0.9, 0.1]
    low, high = Rate(9, 10).wilson()
    assert patched.error_y.array[0] == pytest.approx(high - 0.9) and patched.error_y.arrayminus[0] == pytest.approx(0.9 - low)
    perplexity = [t for t in fig.data if t.xaxis == "x2"]
    assert list(perplexity[0].x) == ["en", "zh"] and list(perplexity[0].y) == [12.0, 13.0]
    assert [t.showlegend for t in fig.data].count(True) == 2  # one legend entry per variant
