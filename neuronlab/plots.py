"""Plot builders: pure functions from scores and neuron sets to plotly figures (no Streamlit here).

Figures keep the numbers they show readable from the figure: heatmap ``z``, bar ``y``, and for Venn and
UpSet charts ``fig.layout.meta`` lists the regions as ``{"sets": [names], "count": n}``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cache

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from neuronlab.neurons.sets import NeuronSet
from neuronlab.analysis.overlap import counts_by_layer, exclusive_regions, jaccard_by_layer, jaccard_matrix

PALETTE = qualitative.Plotly
MATRIX_ON, MATRIX_OFF = "#303030", "#d9d9d9"


FONT = 15  # base text size (px) of every figure: legible on a projector


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _readable(fig: go.Figure, height: int | None = None) -> go.Figure:
    """Projector-sized text (base ``FONT``, larger titles) and, when given, a fixed height in px. Axis, legend
    and colour bar sizes are set one by one: a theme's template (Streamlit's) would otherwise set them smaller."""
    fig.update_layout(font=dict(size=FONT), title=dict(font=dict(size=FONT + 5)), height=height,
                      legend=dict(font=dict(size=FONT), title=dict(font=dict(size=FONT))))
    fig.update_xaxes(tickfont_size=FONT, title_font_size=FONT)
    fig.update_yaxes(tickfont_size=FONT, title_font_size=FONT)
    fig.update_traces(colorbar=dict(tickfont=dict(size=FONT), title=dict(font=dict(size=FONT))),
                      selector=dict(type="heatmap"))
    return fig


def _region_text(names: Sequence[str]) -> str:
    """"only in en", "only in en and zh", "only in en, zh and ko"."""
    names = list(names)
    return "only in " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])


def _ordered(region: frozenset[str], order: Sequence[str]) -> list[str]:
    return [name for name in order if name in region]


# ---- scores ---------------------------------------------------------------------------------------
def _bin_max_abs(values: np.ndarray, max_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin columns into at most ``max_bins`` equal-width bins, keeping each bin's largest-magnitude value.

    Returns (binned [layers, bins], first index of each bin [bins], last index of each bin [bins]).
    """
    n_layers, n = values.shape
    width = max(1, math.ceil(n / max_bins))
    n_bins = math.ceil(n / width)
    padded = np.full((n_layers, n_bins * width), np.nan)  # [layers, bins * width]
    padded[:, :n] = values
    blocks = padded.reshape(n_layers, n_bins, width)  # [layers, bins, width]
    magnitude = np.where(np.isnan(blocks), -np.inf, np.abs(blocks))
    pick = magnitude.argmax(axis=2)[..., None]  # [layers, bins, 1]
    binned = np.take_along_axis(blocks, pick, axis=2)[..., 0]  # [layers, bins]
    starts = np.arange(n_bins) * width
    return binned, starts, np.minimum(starts + width, n) - 1


def _window(size: int, span: tuple[int, int] | None, what: str) -> tuple[int, int]:
    """``span`` (first, last), inclusive, checked against ``size``; the whole axis when None."""
    first, last = (0, size - 1) if span is None else (int(span[0]), int(span[1]))
    if not 0 <= first <= last < size:
        raise ValueError(f"{what} range {span} is outside 0–{size - 1}")
    return first, last


def _outline_trace(outline: NeuronSet, label: str, layers: tuple[int, int], cells: np.ndarray,
                   centres: np.ndarray, site_label: str) -> go.Scatter:
    """Open squares on the cells holding ``outline``'s neurons, sized to the cells (a plot ~700 px wide);
    ``cells[i]`` is the cell of neuron ``i`` of the window (-1 outside it), ``centres[c]`` the x of cell ``c``."""
    hits: dict[tuple[int, int], list[int]] = {}
    for layer, _, index in outline:
        if layers[0] <= layer <= layers[1] and 0 <= index < len(cells) and cells[index] >= 0:
            hits.setdefault((layer, int(cells[index])), []).append(index)
    keys = sorted(hits)
    text = [f"{label}: {site_label} " + ", ".join(map(str, hits[k][:8])) + (" …" if len(hits[k]) > 8 else "")
            for k in keys]
    return go.Scatter(
        x=[centres[c] for _, c in keys], y=[layer for layer, _ in keys], mode="markers", name=label, showlegend=True,
        marker=dict(symbol="square-open", size=float(np.clip(700 / len(centres), 7, 16)), color="black",
                    line=dict(width=2)), hovertext=text,
        hovertemplate="layer %{y}<br>%{hovertext}<extra></extra>")


def score_heatmap(scores: torch.Tensor | np.ndarray, title: str = "Safety-neuron scores", max_bins: int = 256,
                  site_label: str = "MLP neuron", per_layer: bool = True, neurons: tuple[int, int] | None = None,
                  layers: tuple[int, int] | None = None, outline: NeuronSet | None = None,
                  outline_label: str | None = None) -> go.Figure:
    """Layers × neurons heatmap of ``scores`` [layers, neurons], for the inclusive ``neurons`` and ``layers``
    ranges (all by default).

    When the neuron range fits in ``max_bins`` columns every cell is one neuron (x = its index); otherwise
    each cell bins equal runs of neurons and shows the value of largest magnitude (sign kept), and the
    subtitle says so. ``per_layer`` (on by default) divides each layer by its largest magnitude over the
    whole layer, so that a few loud late layers do not wash out the rest and zooming keeps the colours;
    hover shows the raw score. ``outline`` marks the cells holding its neurons (of this heatmap's site: filter
    the set first) with open squares, named ``outline_label`` in the legend. ``fig.layout.meta`` holds
    ``neurons_per_cell``, ``neurons`` and ``layers``.
    """
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().float().cpu().numpy()
    values = np.asarray(scores, dtype=np.float64)  # [layers, neurons]
    if values.ndim != 2:
        raise ValueError(f"scores must be [layers, neurons], got shape {tuple(values.shape)}")
    if max_bins < 1:
        raise ValueError(f"max_bins must be at least 1, got {max_bins}")
    rows, cols = _window(values.shape[0], layers, "layer"), _window(values.shape[1], neurons, "neuron")
    window = values[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1]  # [shown layers, shown neurons]
    binned, starts, ends = _bin_max_abs(window, max_bins)  # [shown layers, cells]
    starts, ends = starts + cols[0], ends + cols[0]
    per_cell = int(ends[0] - starts[0] + 1)
    ranges = np.array([f"{site_label} {s}" if s == e else f"{site_label}s {s}–{e}" for s, e in zip(starts, ends)])
    shown = binned
    if per_layer:
        scale = np.abs(np.nan_to_num(values[rows[0]:rows[1] + 1], nan=0.0)).max(axis=1, keepdims=True)  # [shown, 1]
        shown = binned / np.where(scale > 0, scale, 1.0)
    centres = (starts + ends) / 2
    scaled = "<br>%{z:.2f} of the layer's largest |score|" if per_layer else ""
    fig = go.Figure(go.Heatmap(
        z=shown, x=centres, y=np.arange(rows[0], rows[1] + 1),
        customdata=np.broadcast_to(ranges, binned.shape), text=np.vectorize(lambda v: f"{v:.4g}")(binned),
        colorscale="RdBu_r", zmid=0, name="scores",
        colorbar=dict(title=dict(text="score /<br>layer max" if per_layer else "score")),
        hovertemplate=f"layer %{{y}}<br>%{{customdata}}<br>score: %{{text}}{scaled}<extra></extra>",
    ))
    if outline is not None:
        cells = np.full(values.shape[1], -1)
        cells[cols[0]:cols[1] + 1] = np.arange(cols[1] - cols[0] + 1) // per_cell
        fig.add_trace(_outline_trace(outline, outline_label or outline.name or "outlined neurons", rows, cells,
                                     centres, site_label))
    if per_cell > 1:
        note = f"binned: {per_cell} neurons per cell (largest |score| shown) — narrow the range to see single neurons"
        axis = f"{site_label} index (binned, {per_cell} per cell)"
    else:
        note, axis = "one cell per neuron", f"{site_label} index"
    fig.update_xaxes(range=[cols[0] - 0.5, cols[1] + 0.5], title_text=axis)  # the cells, whatever else is drawn
    fig.update_yaxes(range=[rows[0] - 0.5, rows[1] + 0.5], title_text="layer")
    fig.update_layout(title=dict(text=title, subtitle=dict(text=note)),
                      legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"),
                      meta=dict(neurons_per_cell=per_cell, neurons=list(cols), layers=list(rows)))
    return _readable(fig, height=max(420, 140 + 16 * (rows[1] - rows[0] + 1)))


# ---- per-layer counts and Jaccard -----------------------------------------------------------------
def counts_by_language_figure(sets: Mapping[str, NeuronSet], n_layers: int,
                              title: str = "Safety neurons per layer, by language", legend: str = "language") -> go.Figure:
    """Grouped bars: neurons per layer, one series per set."""
    counts = counts_by_layer(sets, n_layers)  # [layers, sets]
    fig = go.Figure([
        go.Bar(x=counts.index.to_numpy(), y=counts[name].to_numpy(), name=name, marker_color=_colour(i),
               hovertemplate=f"{name}<br>layer %{{x}}: %{{y}} neurons<extra></extra>")
        for i, name in enumerate(counts.columns)
    ])
    fig.update_layout(title=dict(text=title), barmode="group", xaxis_title="layer", yaxis_title="neurons",
                      legend_title_text=legend)
    return _readable(fig)


def jaccard_figure(sets: Mapping[str, NeuronSet], n_layers: int,
                   title: str = "Per-layer overlap (Jaccard) of each language pair") -> go.Figure:
    """Heatmap of per-layer Jaccard similarity, layers × language pairs, on a fixed 0–1 scale.

    Cells where neither set of the pair has neurons are blank (NaN).
    """
    if len(sets) < 2:
        raise ValueError(f"a Jaccard figure needs at least two sets, got {len(sets)}")
    table = jaccard_by_layer(sets, n_layers)  # [layers, pairs]
    z = table.to_numpy()
    text = np.where(np.isnan(z), "no neurons in either set", np.char.mod("%.3f", np.nan_to_num(z)))
    fig = go.Figure(go.Heatmap(
        z=z, x=list(table.columns), y=table.index.to_numpy(), customdata=text, zmin=0, zmax=1,
        colorscale="Viridis", colorbar=dict(title=dict(text="Jaccard")),
        hovertemplate="layer %{y}<br>%{x}<br>Jaccard: %{customdata}<extra></extra>",
    ))
    fig.update_layout(title=dict(text=title), xaxis_title="language pair", yaxis_title="layer")
    return _readable(fig)


def jaccard_matrix_figure(sets: Mapping[str, NeuronSet],
                          title: str = "Overlap (Jaccard) between languages") -> go.Figure:
    """Language × language heatmap of Jaccard similarity with the values written in the cells."""
    matrix = jaccard_matrix(sets)  # [sets, sets]
    names = list(matrix.index)
    sizes = [[f"|∩| = {len(sets[r] & sets[c])}, |∪| = {len(sets[r] | sets[c])}" for c in names] for r in names]
    fig = go.Figure(go.Heatmap(
        z=matrix.to_numpy(), x=names, y=names, customdata=sizes, zmin=0, zmax=1, colorscale="Viridis",
        texttemplate="%{z:.2f}", colorbar=dict(title=dict(text="Jaccard")),
        hovertemplate="%{y} vs %{x}<br>Jaccard: %{z:.3f}<br>%{customdata}<extra></extra>",
    ))
    fig.update_layout(title=dict(text=title), xaxis_title="language", yaxis_title="language",
                      yaxis_autorange="reversed")
    return _readable(fig)


# ---- donor compatibility --------------------------------------------------------------------------
SAME = 1e-12  # 1 − cosine below this reads as "the same weights"


def _cosine_text(cosine: float) -> str:
    """The cosine with enough decimals to tell it from 1: 0.99 -> "0.990", 0.9999 -> "0.99990"."""
    digits = min(12, max(2, math.ceil(-math.log10(1 - cosine) - 1e-9) + 1))  # 1e-9: 1 - 0.9999 is 9.99…e-5
    return f"{cosine:.{digits}f}"


def similarity_figure(similarity: Sequence[float], title: str = "How far the donor's weights are from the target's"
                      ) -> go.Figure:
    """Bars of 1 − cosine similarity per layer (``Compatibility.layer_similarity``) on a log axis fitted to
    the data, so that 0.99 and 0.9999 are far apart instead of both flat at the top of a 0–1 axis; each bar
    is labelled with the cosine itself. Layers with the same weights (1 − cosine < ``SAME``) get no bar and
    the label "same"."""
    cosine = np.asarray(similarity, dtype=np.float64)  # [layers]
    if cosine.ndim != 1 or not len(cosine):
        raise ValueError(f"similarity must be one value per layer, got shape {tuple(cosine.shape)}")
    same = 1 - cosine < SAME  # [layers]
    changed = np.log10(1 - cosine[~same])  # [changed layers]
    low, high = (math.floor(changed.min()) - 0.5, changed.max() + 1.2) if len(changed) else (-3.0, 0.0)
    distance = np.where(same, 10 ** low, 1 - cosine)  # [layers]; a "same" bar has no height
    fig = go.Figure(go.Bar(
        x=np.arange(len(cosine)), y=distance, text=["same" if s else _cosine_text(c) for s, c in zip(same, cosine)],
        customdata=cosine, textposition="outside", textangle=-90 if len(cosine) > 12 else 0, textfont_size=FONT - 2,
        constraintext="none", cliponaxis=False, marker_color=_colour(0),
        hovertemplate="layer %{x}: cosine %{customdata:.10f}<extra></extra>"))
    note = f"{int(same.sum())} of {len(cosine)} layers have the same weights" if same.any() else ""
    fig.update_layout(title=dict(text=title, subtitle=dict(text=note)), xaxis_title="layer", bargap=0.15,
                      showlegend=False, meta=dict(same=np.flatnonzero(same).tolist()))
    fig.update_yaxes(type="log", range=[low, high], dtick=1, exponentformat="power",
                     title_text="1 − cosine (log scale)<br>taller = more changed")
    return _readable(fig, height=440)


# ---- evaluation -----------------------------------------------------------------------------------
EVAL_PANELS = (  # (title, y axis title, metrics, x label of a row); the first panel spans the top row
    ("Refusal rate", "share of prompts refused", ("refusal harmful", "refusal harmless"),
     lambda r: f"{r.lang} {r.metric[8:]}"),
    ("Perplexity on benign text<br>(lower is better)", "perplexity", ("perplexity",), lambda r: r.lang),
    ("Multiple-choice accuracy", "answered right", ("multiple choice",), lambda r: "accuracy"),
)
EVAL_CELLS = ((1, 1), (2, 1), (2, 2))  # (row, col) of each panel


def evaluation_figure(table: pd.DataFrame, title: str = "Safety and utility, side by side") -> go.Figure:
    """Grouped bars, one series per variant, from ``evaluation.results_table``: refusal rates per language
    and label across the top, perplexity per language and multiple-choice accuracy below; intervals drawn as
    error bars."""
    fig = make_subplots(rows=2, cols=2, specs=[[{"colspan": 2}, None], [{}, {}]], vertical_spacing=0.22,
                        horizontal_spacing=0.12, row_heights=[0.55, 0.45],
                        subplot_titles=[panel[0] for panel in EVAL_PANELS])
    for i, variant in enumerate(dict.fromkeys(table["variant"])):
        rows = table[table["variant"] == variant]
        for panel, ((row, col), (_, _, metrics, x_of)) in enumerate(zip(EVAL_CELLS, EVAL_PANELS)):
            part = rows[rows["metric"].isin(metrics)]
            if part.empty:
                continue
            value = part["value"].to_numpy(float)
            fig.add_trace(go.Bar(
                x=[x_of(r) for r in part.itertuples()], y=value, name=variant, legendgroup=variant,
                showlegend=panel == 0, marker_color=_colour(i),
                error_y=dict(type="data", array=part["high"].to_numpy(float) - value,
                             arrayminus=value - part["low"].to_numpy(float), visible=True),
                customdata=part["n"].to_numpy(float),
                hovertemplate=f"{variant}<br>%{{x}}: %{{y:.3g}} (n = %{{customdata}})<extra></extra>"),
                row=row, col=col)
    for (row, col), (_, y_title, metrics, _) in zip(EVAL_CELLS, EVAL_PANELS):
        fig.update_yaxes(title_text=y_title, row=row, col=col)
        if "perplexity" not in metrics:
            fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=row, col=col)
    fig.update_annotations(font_size=FONT + 2)  # the subplot titles
    fig.update_layout(title=dict(text=title), barmode="group", legend_title_text="model", margin=dict(t=90))
    return _readable(fig, height=680)


# ---- Venn -----------------------------------------------------------------------------------------
@cache
def _venn_layout(k: int) -> tuple[np.ndarray, dict[int, tuple[float, float]]]:
    """Unit-radius circle centres [k, 2] and a label point per region (bit mask), found on a grid."""
    if k == 2:
        centres = np.array([[-0.5, 0.0], [0.5, 0.0]])
    else:
        angles = np.radians([150, 30, 270])
        centres = 0.62 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    axis = np.linspace(-2, 2, 401)
    xs, ys = np.meshgrid(axis, axis)  # [401, 401]
    inside = [(xs - cx) ** 2 + (ys - cy) ** 2 < 1 for cx, cy in centres]
    masks = sum(inside[i].astype(int) << i for i in range(k))  # [401, 401] region of each grid point
    labels = {m: (float(xs[masks == m].mean()), float(ys[masks == m].mean())) for m in range(1, 2 ** k)}
    return centres, labels


def venn_figure(sets: Mapping[str, NeuronSet], title: str = "Shared safety neurons across languages") -> go.Figure:
    """Venn diagram of 2 or 3 sets: circles, the exact count of every region, and each set's size.

    Region annotations are named ``"region:en&zh"``; ``fig.layout.meta`` holds the regions and sizes.
    """
    names = list(sets)
    if len(names) not in (2, 3):
        raise ValueError(f"a Venn diagram draws 2 or 3 sets, got {len(names)}; use upset_figure for more")
    centres, label_points = _venn_layout(len(names))
    regions = exclusive_regions(sets)
    fig = go.Figure()
    for i, ((cx, cy), name) in enumerate(zip(centres, names)):
        fig.add_shape(type="circle", x0=cx - 1, y0=cy - 1, x1=cx + 1, y1=cy + 1, line=dict(color=_colour(i), width=2),
                      fillcolor=_colour(i), opacity=0.25, layer="below")
        direction = np.array([cx, cy]) / np.hypot(cx, cy)
        lx, ly = np.array([cx, cy]) + direction * 1.05
        fig.add_annotation(
            x=lx, y=ly, text=f"<b>{name}</b> ({len(sets[name])})", showarrow=False, name=f"set:{name}",
            font=dict(size=FONT + 7, color=_colour(i)), hovertext=f"{name}: {len(sets[name])} neurons in all",
            xanchor="right" if direction[0] < -0.3 else "left" if direction[0] > 0.3 else "center",
            yanchor="top" if direction[1] < -0.3 else "bottom" if direction[1] > 0.3 else "middle")
    for region, count in regions.items():
        mask = sum(1 << names.index(name) for name in region)
        members = _ordered(region, names)
        x, y = label_points[mask]
        fig.add_annotation(x=x, y=y, text=str(count), showarrow=False, font=dict(size=FONT + 11),
                           name="region:" + "&".join(members), hovertext=f"{_region_text(members)}: {count} neurons")
    hidden = dict(visible=False, showgrid=False, zeroline=False)
    bottom = 0.35 if len(names) == 3 else 0.05  # room for the label under the lowest circle
    fig.update_layout(
        title=dict(text=title), plot_bgcolor="white", showlegend=False, margin=dict(l=10, r=10, b=10, t=60),
        xaxis=dict(range=[centres[:, 0].min() - 2.2, centres[:, 0].max() + 2.2], **hidden),
        yaxis=dict(range=[centres[:, 1].min() - 1 - bottom, centres[:, 1].max() + 1.05], scaleanchor="x", **hidden),
        meta=dict(regions=[{"sets": _ordered(r, names), "count": c} for r, c in regions.items()],
                  sizes={name: len(s) for name, s in sets.items()}),
    )
    return _readable(fig, height=520)


# ---- UpSet ----------------------------------------------------------------------------------------
def upset_figure(sets: Mapping[str, NeuronSet], max_intersections: int = 30,
                 title: str = "Shared safety neurons across languages (UpSet)") -> go.Figure:
    """UpSet chart for any number of sets: exclusive intersection sizes (largest first) over a dot matrix
    of which sets each intersection holds, with the set sizes beside it.

    Only the ``max_intersections`` largest non-empty regions are drawn; ``fig.layout.meta`` lists them.
    """
    names = list(sets)
    if not names:
        raise ValueError("an UpSet chart needs at least one set")
    regions = exclusive_regions(sets, include_empty=False)
    ranked = sorted(regions.items(), key=lambda rc: -rc[1])[:max_intersections]  # stable: ties keep region order
    columns = [_ordered(region, names) for region, _ in ranked]
    counts = [count for _, count in ranked]
    x = np.arange(len(columns))
    rows = {name: len(names) - 1 - i for i, name in enumerate(names)}  # first set on top

    fig = make_subplots(rows=2, cols=2, specs=[[None, {}], [{}, {}]], column_widths=[0.2, 0.8],
                        row_heights=[0.62, 0.38], horizontal_spacing=0.08, vertical_spacing=0.03)
    hover = [f"{_region_text(c)}: {n} neurons" for c, n in zip(columns, counts)]
    fig.add_trace(go.Bar(x=x, y=counts, text=counts, textposition="outside", marker_color=MATRIX_ON,
                         hovertext=hover, hoverinfo="text", name="intersection size"), row=1, col=2)
    fig.add_trace(go.Bar(x=[len(sets[n]) for n in names], y=[rows[n] for n in names], orientation="h",
                         marker_color=[_colour(i) for i in range(len(names))], name="set size",
                         hovertext=[f"{n}: {len(sets[n])} neurons in all" for n in names], hoverinfo="text"),
                  row=2, col=1)
    grid_x, grid_y = np.meshgrid(x, np.arange(len(names)))
    fig.add_trace(go.Scatter(x=grid_x.ravel(), y=grid_y.ravel(), mode="markers", hoverinfo="skip",
                             marker=dict(size=14, color=MATRIX_OFF), name="not in set"), row=2, col=2)
    line_x, line_y = [], []
    for i, members in enumerate(columns):
        ys = [rows[n] for n in members]
        line_x += [i, i, None]
        line_y += [min(ys), max(ys), None]
    fig.add_trace(go.Scatter(x=line_x, y=line_y, mode="lines", line=dict(color=MATRIX_ON, width=3),
                             hoverinfo="skip", name="links"), row=2, col=2)
    dots = [(i, rows[n], text) for i, (members, text) in enumerate(zip(columns, hover)) for n in members]
    fig.add_trace(go.Scatter(x=[d[0] for d in dots], y=[d[1] for d in dots], mode="markers",
                             marker=dict(size=14, color=MATRIX_ON), hovertext=[d[2] for d in dots],
                             hoverinfo="text", name="in set"), row=2, col=2)

    x_range = [-0.6, max(len(columns), 1) - 0.4]
    y_range = [-0.5, len(names) - 0.5]
    shown = f"the {len(columns)} largest of {len(regions)}" if len(columns) < len(regions) else "all"
    fig.update_xaxes(range=x_range, showticklabels=False, row=1, col=2)
    fig.update_xaxes(range=x_range, showticklabels=False, showgrid=False, zeroline=False, matches="x", row=2, col=2,
                     title_text=f"intersections ({shown}, largest first)")
    fig.update_yaxes(title_text="neurons in exactly these sets", row=1, col=2)
    fig.update_yaxes(range=y_range, tickvals=list(rows.values()), ticktext=list(rows), showgrid=False,
                     zeroline=False, row=2, col=2)
    fig.update_xaxes(autorange="reversed", title_text="set size", row=2, col=1)
    fig.update_yaxes(range=y_range, showticklabels=False, showgrid=False, matches="y3", row=2, col=1)
    fig.update_layout(
        title=dict(text=title), showlegend=False, plot_bgcolor="white", bargap=0.3,
        meta=dict(intersections=[{"sets": c, "count": n} for c, n in zip(columns, counts)],
                  sizes={name: len(s) for name, s in sets.items()}, total_intersections=len(regions)),
    )
    return _readable(fig, height=360 + 40 * len(names))


# ---- transfer search ------------------------------------------------------------------------------
def transfer_curve_figure(curve: pd.DataFrame, goal: float | None = None, found_k: int | None = None,
                          title: str = "Refusal and perplexity vs neurons moved") -> go.Figure:
    """Refusal rates (left axis) and perplexity (right axis) against neurons moved, the ranked set solid
    and random sets of the same per-layer counts dashed (± standard error over seeds), from
    ``SearchResult.to_frame()``; the unpatched destination (k = 0) is drawn as dotted horizontal lines and
    the smallest set that met the goal as a star."""
    steps, start = curve[curve["k"] > 0], curve[curve["k"] == 0]
    share = steps["share"].to_numpy()
    series = (("harmful", "harmful refusal", _colour(0), "y"), ("harmless", "false refusal", _colour(1), "y"),
              ("perplexity", "perplexity", _colour(2), "y2"))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, label, colour, axis in series:
        hover = f"{label}: %{{y:.3g}}<br>%{{x}} neurons (%{{customdata:.4%}} of parameters)<extra>%{{fullData.name}}</extra>"
        fig.add_trace(go.Scatter(x=steps["k"], y=steps[key], name=f"{label}, ranked", mode="lines+markers",
                                 line=dict(color=colour), customdata=share, hovertemplate=hover),
                      secondary_y=axis == "y2")
        fig.add_trace(go.Scatter(x=steps["k"], y=steps[f"random_{key}"], name=f"{label}, random",
                                 mode="lines+markers", line=dict(color=colour, dash="dash"), marker=dict(symbol="x"),
                                 error_y=dict(type="data", array=steps[f"random_{key}_se"], visible=True),
                                 customdata=share, hovertemplate=hover),
                      secondary_y=axis == "y2")
        if len(start):
            fig.add_hline(y=float(start[key].iloc[0]), line=dict(color=colour, dash="dot", width=1),
                          secondary_y=axis == "y2")
    if goal is not None:
        fig.add_hline(y=goal, line=dict(color="black", dash="dot"), annotation_text=f"goal {goal:.0%}")
    if found_k is not None:
        hit = steps[steps["k"] == found_k]
        fig.add_trace(go.Scatter(x=hit["k"], y=hit["harmful"], name=f"goal met: {found_k} neurons", mode="markers",
                                 marker=dict(symbol="star", size=16, color="black"),
                                 hovertemplate="goal met with %{x} neurons<extra></extra>"))
    fig.update_layout(title=dict(text=title), hovermode="closest", legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(type="log", title_text="neurons moved (log scale)")
    fig.update_yaxes(title_text="refusal rate (approximate)", range=[0, 1.05], secondary_y=False)
    fig.update_yaxes(title_text="perplexity", secondary_y=True)
    return _readable(fig, height=520)
