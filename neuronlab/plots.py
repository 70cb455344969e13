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

from .neurons import NeuronSet
from .overlap import counts_by_layer, exclusive_regions, jaccard_by_layer, jaccard_matrix

PALETTE = qualitative.Plotly
MATRIX_ON, MATRIX_OFF = "#303030", "#d9d9d9"


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


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


def score_heatmap(scores: torch.Tensor | np.ndarray, title: str = "Safety-neuron scores", max_bins: int = 256,
                  site_label: str = "MLP neuron", per_layer: bool = False) -> go.Figure:
    """Layers × neurons heatmap of ``scores`` [layers, neurons], binned to at most ``max_bins`` columns.

    Each bin shows the value of largest magnitude in it (sign kept); the colour scale diverges around 0.
    ``per_layer`` divides each layer by its largest magnitude, so that a few loud late layers do not wash
    out the rest (hover still shows the raw score).
    """
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().float().cpu().numpy()
    values = np.asarray(scores, dtype=np.float64)  # [layers, neurons]
    if values.ndim != 2:
        raise ValueError(f"scores must be [layers, neurons], got shape {tuple(values.shape)}")
    if max_bins < 1:
        raise ValueError(f"max_bins must be at least 1, got {max_bins}")
    binned, starts, ends = _bin_max_abs(values, max_bins)  # [layers, bins]
    ranges = np.array([f"{site_label} {s}" if s == e else f"{site_label}s {s}–{e}" for s, e in zip(starts, ends)])
    shown = binned
    if per_layer:
        scale = np.nan_to_num(np.nanmax(np.abs(binned), axis=1, keepdims=True), nan=1.0)
        shown = binned / np.where(scale > 0, scale, 1.0)
    fig = go.Figure(go.Heatmap(
        z=shown, x=(starts + ends) / 2, y=np.arange(values.shape[0]),
        customdata=np.broadcast_to(ranges, binned.shape), text=np.vectorize(lambda v: f"{v:.4g}")(binned),
        colorscale="RdBu_r", zmid=0,
        colorbar=dict(title=dict(text="score / layer max" if per_layer else "score")),
        hovertemplate="layer %{y}<br>%{customdata}<br>score: %{text}<extra></extra>",
    ))
    binned_note = "" if ends[0] == starts[0] else f" (largest-magnitude score per {ends[0] - starts[0] + 1})"
    fig.update_layout(title=dict(text=title), xaxis_title=f"{site_label} index{binned_note}", yaxis_title="layer")
    return fig


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
    return fig


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
    return fig


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
    return fig


# ---- evaluation -----------------------------------------------------------------------------------
EVAL_PANELS = (  # (title, metrics, x label of a row)
    ("Refusal rate (95% interval)", ("refusal harmful", "refusal harmless"), lambda r: f"{r.lang} {r.metric[8:]}"),
    ("Perplexity on benign text (lower is better)", ("perplexity",), lambda r: r.lang),
    ("Multiple-choice accuracy (95% interval)", ("multiple choice",), lambda r: "accuracy"),
)


def evaluation_figure(table: pd.DataFrame, title: str = "Safety and utility, side by side") -> go.Figure:
    """Grouped bars, one series per variant, from ``evaluation.results_table``: refusal rates per language
    and label, perplexity per language, multiple-choice accuracy; intervals drawn as error bars."""
    fig = make_subplots(rows=1, cols=len(EVAL_PANELS), column_widths=[0.5, 0.3, 0.2],
                        subplot_titles=[panel[0] for panel in EVAL_PANELS])
    for i, variant in enumerate(dict.fromkeys(table["variant"])):
        rows = table[table["variant"] == variant]
        for col, (_, metrics, x_of) in enumerate(EVAL_PANELS, 1):
            part = rows[rows["metric"].isin(metrics)]
            if part.empty:
                continue
            value = part["value"].to_numpy(float)
            fig.add_trace(go.Bar(
                x=[x_of(r) for r in part.itertuples()], y=value, name=variant, legendgroup=variant,
                showlegend=col == 1, marker_color=_colour(i),
                error_y=dict(type="data", array=part["high"].to_numpy(float) - value,
                             arrayminus=value - part["low"].to_numpy(float), visible=True),
                customdata=part["n"].to_numpy(float),
                hovertemplate=f"{variant}<br>%{{x}}: %{{y:.3g}} (n = %{{customdata}})<extra></extra>"), row=1, col=col)
    fig.update_layout(title=dict(text=title), barmode="group", legend_title_text="model")
    fig.update_yaxes(range=[0, 1.05], row=1, col=1)
    fig.update_yaxes(range=[0, 1.05], row=1, col=3)
    return fig


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
            font=dict(size=15, color=_colour(i)), hovertext=f"{name}: {len(sets[name])} neurons in all",
            xanchor="right" if direction[0] < -0.3 else "left" if direction[0] > 0.3 else "center",
            yanchor="top" if direction[1] < -0.3 else "bottom" if direction[1] > 0.3 else "middle")
    for region, count in regions.items():
        mask = sum(1 << names.index(name) for name in region)
        members = _ordered(region, names)
        x, y = label_points[mask]
        fig.add_annotation(x=x, y=y, text=str(count), showarrow=False, font=dict(size=14),
                           name="region:" + "&".join(members), hovertext=f"{_region_text(members)}: {count} neurons")
    hidden = dict(visible=False, showgrid=False, zeroline=False)
    fig.update_layout(
        title=dict(text=title), plot_bgcolor="white", showlegend=False,
        xaxis=dict(range=[-2.4, 2.4], **hidden), yaxis=dict(range=[-2.0, 2.0], scaleanchor="x", **hidden),
        meta=dict(regions=[{"sets": _ordered(r, names), "count": c} for r, c in regions.items()],
                  sizes={name: len(s) for name, s in sets.items()}),
    )
    return fig


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
                             marker=dict(size=12, color=MATRIX_OFF), name="not in set"), row=2, col=2)
    line_x, line_y = [], []
    for i, members in enumerate(columns):
        ys = [rows[n] for n in members]
        line_x += [i, i, None]
        line_y += [min(ys), max(ys), None]
    fig.add_trace(go.Scatter(x=line_x, y=line_y, mode="lines", line=dict(color=MATRIX_ON, width=3),
                             hoverinfo="skip", name="links"), row=2, col=2)
    dots = [(i, rows[n], text) for i, (members, text) in enumerate(zip(columns, hover)) for n in members]
    fig.add_trace(go.Scatter(x=[d[0] for d in dots], y=[d[1] for d in dots], mode="markers",
                             marker=dict(size=12, color=MATRIX_ON), hovertext=[d[2] for d in dots],
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
    return fig


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
    return fig
