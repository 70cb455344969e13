"""Plot builders: the numbers read back from each figure equal those of the sets and scores drawn."""
import math
import time

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from neuronlab import NeuronSet
from neuronlab.evaluation.metrics import Rate, results_table
from neuronlab.plots import (
    FONT,
    counts_by_language_figure,
    evaluation_figure,
    jaccard_figure,
    jaccard_matrix_figure,
    score_heatmap,
    similarity_figure,
    upset_figure,
    venn_figure,
)
from tests.support.builders import SMALL, brute_regions, fake_result, random_sets


# ---- score heatmap --------------------------------------------------------------------------------
def test_heatmap_bins_keep_largest_magnitude_with_sign_and_name_the_range():
    rng = np.random.default_rng(0)
    scores = rng.uniform(-1, 1, size=(3, 4096))  # [layers, neurons]
    scores[1, 100] = -5.0  # in bin 6 = neurons 96..111 (4096 / 256 = 16 per bin)
    scores[1, 97] = 4.0
    trace = score_heatmap(scores, per_layer=False).data[0]
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
    trace = score_heatmap(scores, max_bins=256, per_layer=False).data[0]
    z = np.asarray(trace.z)
    assert z.shape[1] <= 256 and z.shape == (4, 250)  # 4 neurons per bin
    assert "neurons 996–999" in trace.customdata[0][-1]
    assert np.allclose(z, np.asarray(score_heatmap(scores.numpy(), per_layer=False).data[0].z))

    small = score_heatmap(scores[:, :10], site_label="attn_o channel", title="o_proj", per_layer=False).data[0]
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


def layer_scales(scores: np.ndarray) -> np.ndarray:
    """Each layer's largest |score| over the whole layer, [layers, 1]."""
    return np.abs(scores).max(axis=1, keepdims=True)


def test_heatmap_scales_each_layer_by_default_one_cell_per_neuron_when_it_fits():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((5, 200)) * np.array([[0.01], [1], [3], [50], [400]])  # [layers, neurons]
    fig = score_heatmap(scores)  # defaults: per-layer scaling, 200 neurons fit in 256 cells
    trace = fig.data[0]
    assert list(trace.x) == list(range(200)) and list(trace.y) == list(range(5))
    np.testing.assert_allclose(np.asarray(trace.z), scores / layer_scales(scores))
    assert np.abs(np.asarray(trace.z)).max(axis=1) == pytest.approx(np.ones(5))  # every layer uses the full scale
    assert trace.text[3][17] == f"{scores[3, 17]:.4g}" and trace.customdata[3][17] == "MLP neuron 17"
    assert all(part in trace.hovertemplate for part in ("layer %{y}", "%{customdata}", "score: %{text}"))
    assert fig.layout.meta["neurons_per_cell"] == 1 and "one cell per neuron" in fig.layout.title.subtitle.text
    assert "binned" not in fig.layout.xaxis.title.text


def test_heatmap_zoomed_out_bins_keep_the_largest_magnitude_and_say_so():
    rng = np.random.default_rng(4)
    scores = rng.uniform(-1, 1, size=(3, 4096)) * np.array([[1], [10], [100]])  # [layers, neurons]
    scores[2, 40] = -300.0  # bin 2 = neurons 32..47
    fig = score_heatmap(scores)
    z = np.asarray(fig.data[0].z)  # [3, 256], 16 neurons per cell
    blocks = scores.reshape(3, 256, 16)
    picked = np.take_along_axis(blocks, np.abs(blocks).argmax(axis=2)[..., None], axis=2)[..., 0]
    np.testing.assert_allclose(z, picked / layer_scales(scores))
    assert z[2, 2] == -1.0 and fig.data[0].text[2][2] == "-300"
    assert fig.layout.meta["neurons_per_cell"] == 16
    assert "binned: 16 neurons per cell" in fig.layout.title.subtitle.text
    assert "narrow the range" in fig.layout.title.subtitle.text and "binned" in fig.layout.xaxis.title.text


def test_heatmap_ranges_zoom_in_to_single_neurons_with_the_same_colours():
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((6, 4096)) * np.arange(1, 7)[:, None]  # [layers, neurons]
    fig = score_heatmap(scores, neurons=(1000, 1199), layers=(2, 4))
    trace = fig.data[0]
    assert list(trace.x) == list(range(1000, 1200)) and list(trace.y) == [2, 3, 4]
    # scaled by the whole layer's largest |score|, so a neuron keeps its colour when zooming
    np.testing.assert_allclose(np.asarray(trace.z), scores[2:5, 1000:1200] / layer_scales(scores)[2:5])
    assert trace.customdata[0][0] == "MLP neuron 1000" and fig.layout.meta["neurons_per_cell"] == 1
    assert tuple(fig.layout.xaxis.range) == (999.5, 1199.5) and tuple(fig.layout.yaxis.range) == (1.5, 4.5)
    wide = score_heatmap(scores, neurons=(0, 299))  # 300 neurons do not fit in 256 cells
    assert wide.layout.meta["neurons_per_cell"] == 2 and np.asarray(wide.data[0].z).shape == (6, 150)
    for bad in [dict(neurons=(10, 5000)), dict(layers=(3, 2)), dict(neurons=(-1, 4))]:
        with pytest.raises(ValueError, match="range"):
            score_heatmap(scores, **bad)


def outlined(fig: go.Figure) -> set[tuple[float, int]]:
    marks = fig.data[1]
    assert marks.marker.symbol == "square-open" and marks.showlegend
    return set(zip(marks.x, marks.y))


def test_heatmap_outline_marks_exactly_the_outlined_neurons():
    scores = np.random.default_rng(6).standard_normal((4, 1024))  # [layers, neurons]
    inside = [(0, 3), (1, 500), (2, 501), (3, 1023)]
    ms = NeuronSet([(layer, "mlp", i) for layer, i in inside], name="en")
    fig = score_heatmap(scores, neurons=(0, 255), outline=ms, outline_label="MS en, top 3%")  # one neuron per cell
    assert outlined(fig) == {(3, 0)} and fig.data[1].name == "MS en, top 3%"
    fig = score_heatmap(scores, outline=ms)  # 4 per cell: neurons 500 and 501 share cell 125 (500–503)
    assert outlined(fig) == {(1.5, 0), (501.5, 1), (501.5, 2), (1021.5, 3)} and fig.data[1].name == "en"
    hover = dict(zip(zip(fig.data[1].x, fig.data[1].y), fig.data[1].hovertext))
    assert "500" in hover[(501.5, 1)] and "501" in hover[(501.5, 2)]
    zoomed = score_heatmap(scores, neurons=(400, 600), layers=(1, 2), outline=ms)
    assert outlined(zoomed) == {(500, 1), (501, 2)}
    assert list(zoomed.data[0].x)[100] == 500  # a marker sits on its neuron's cell


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


@pytest.mark.parametrize("n", [2, 3])
def test_venn_is_large_with_large_text(n):
    fig = venn_figure(random_sets(seed=7, n_langs=n))
    low, high = fig.layout.yaxis.range
    circles = min(s.y0 for s in fig.layout.shapes), max(s.y1 for s in fig.layout.shapes)
    assert (circles[1] - circles[0]) / (high - low) >= 0.8  # the circles fill the height, not a corner of white
    assert fig.layout.height >= 500
    for a in fig.layout.annotations:
        assert a.font.size >= (FONT + 10 if a.name.startswith("region:") else FONT + 5), a.name


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


# ---- donor compatibility ---------------------------------------------------------------------------
def test_similarity_figure_tells_0_9999_from_0_99():
    fig = similarity_figure([0.9999, 0.99, 1.0, 0.999999, 0.5])
    bars = fig.data[0]
    assert fig.layout.yaxis.type == "log" and list(bars.x) == [0, 1, 2, 3, 4]
    low, high = fig.layout.yaxis.range
    height = {i: (math.log10(y) - low) / (high - low) for i, y in enumerate(bars.y)}  # share of the axis
    assert height[1] - height[0] >= 0.25 and height[0] - height[3] >= 0.25  # 0.99, 0.9999, 0.999999 far apart
    assert height[2] == pytest.approx(0) and 0 < height[3] and height[4] < 1  # "same" has no bar; all inside
    assert list(bars.text) == ["0.99990", "0.990", "same", "0.9999990", "0.50"]
    assert fig.layout.meta["same"] == [2] and "1 of 5 layers" in fig.layout.title.subtitle.text
    assert list(bars.customdata) == [0.9999, 0.99, 1.0, 0.999999, 0.5]


def test_similarity_figure_of_identical_models_and_bad_input():
    fig = similarity_figure([1.0] * 4)
    assert list(fig.data[0].text) == ["same"] * 4 and "4 of 4 layers" in fig.layout.title.subtitle.text
    with pytest.raises(ValueError, match="one value per layer"):
        similarity_figure([])


# ---- common to all figures ------------------------------------------------------------------------
FIGURES = {
    "heatmap": lambda: score_heatmap(np.ones((2, 8))),
    "counts": lambda: counts_by_language_figure(SMALL, 4),
    "jaccard": lambda: jaccard_figure(SMALL, 4),
    "jaccard_matrix": lambda: jaccard_matrix_figure(SMALL),
    "venn": lambda: venn_figure(SMALL),
    "upset": lambda: upset_figure(SMALL),
    "similarity": lambda: similarity_figure([0.99, 0.999]),
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


@pytest.mark.parametrize("name", FIGURES)
def test_figures_read_on_a_projector(name):
    fig = FIGURES[name]()
    assert fig.layout.font.size >= FONT >= 15 and fig.layout.title.font.size > FONT
    axes = [fig.layout[k] for k in fig.layout if k.startswith(("xaxis", "yaxis"))]
    assert all(axis.tickfont.size >= FONT and axis.title.font.size >= FONT for axis in axes)  # whatever the theme
    assert all(t.colorbar.tickfont.size >= FONT for t in fig.data if t.type == "heatmap")


def test_heatmap_per_layer_scaling_keeps_raw_scores_in_the_hover():
    scores = np.array([[1.0, -2.0, 0.5, 0.0], [100.0, 50.0, -25.0, 0.0]])  # [layers, neurons]
    trace = score_heatmap(scores, per_layer=True).data[0]
    assert np.allclose(np.asarray(trace.z), [[0.5, -1.0, 0.25, 0.0], [1.0, 0.5, -0.25, 0.0]])
    assert trace.text[1][0] == "100" and trace.text[0][1] == "-2"
    raw = score_heatmap(scores, per_layer=False).data[0]
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


def text_box(size: float, text: str) -> tuple[float, float]:
    """Estimated (width, height) in px of a plotly text: 0.6 × size per character, 1.3 × size per line."""
    lines = text.split("<br>")
    return max(len(line) for line in lines) * 0.6 * size, len(lines) * 1.3 * size


def test_evaluation_titles_fit_their_panels_and_never_overlap():
    table = results_table({"plain": fake_result(2, 0, langs=("en", "zh", "ko")), "patched": fake_result(9, 1),
                           "intervened · random 0": fake_result(3, 1)})
    fig = evaluation_figure(table)
    width, height = 1000, fig.layout.height  # the main column of the app at a 1400 px wide window
    plot_w = width - 80 - 80 - 220  # default margins and a vertical legend of long variant names
    plot_h = height - fig.layout.margin.t - 80
    titles = [a for a in fig.layout.annotations if a.yref == "paper" and a.yanchor == "bottom"]
    assert len(titles) == 3
    domains = {name: (fig.layout[name].domain, fig.layout[name.replace("xaxis", "yaxis")].domain)
               for name in ("xaxis", "xaxis2", "xaxis3")}
    for title in titles:
        assert title.font.size >= FONT
        w, h = text_box(title.font.size, title.text)
        (x0, x1), (y0, y1) = next(d for d in domains.values()  # the panel the title sits on
                                  if d[0][0] <= title.x <= d[0][1] and d[1][1] == pytest.approx(title.y))
        assert w <= (x1 - x0) * plot_w, f"{title.text!r} is wider than its panel"
        below = [d for d in domains.values() if d[1][0] > y1]  # the panel above this one
        for _, (above_bottom, _) in below:
            tick_labels = 1.5 * FONT
            assert (above_bottom - y1) * plot_h >= h + tick_labels, f"{title.text!r} runs into the panel above"
    top = max(titles, key=lambda a: a.y)
    assert fig.layout.margin.t >= text_box(top.font.size, top.text)[1] + 1.5 * fig.layout.title.font.size
    assert [fig.layout[f"yaxis{n}"].title.text for n in ("", "2", "3")] == \
        ["share of prompts refused", "perplexity", "answered right"]


def test_heatmap_cells_carry_the_neuron_a_click_selects():
    scores = np.zeros((3, 600))
    scores[1, 37], scores[2, 590] = 5.0, -7.0  # 600 neurons in 256 cells: 3 per cell
    fig = score_heatmap(scores)
    targets = fig.data[-1]
    assert targets.meta["role"] == "click-targets" and targets.marker.opacity < 0.01
    picked = {(x, y): tuple(int(v) for v in c) for x, y, c in zip(targets.x, targets.y, targets.customdata)}
    assert len(picked) == 3 * 200
    assert picked[(37.0, 1)] == (1, 37) and picked[(589.0, 2)] == (2, 590)  # the cell shows (and selects) the loudest
    zoomed = score_heatmap(scores, neurons=(30, 40), layers=(1, 1))
    assert {tuple(int(v) for v in c) for c in zoomed.data[-1].customdata} == {(1, i) for i in range(30, 41)}
