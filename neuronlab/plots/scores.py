"""The layers × neurons heatmap of safety-neuron scores, binned to fit, with a neuron set outlined."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch

from neuronlab.neurons.sets import NeuronSet
from neuronlab.plots.style import readable


def _bin_max_abs(values: np.ndarray, max_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bin columns into at most ``max_bins`` equal-width bins, keeping each bin's largest-magnitude value.

    Returns (binned [layers, bins], first index of each bin [bins], last index of each bin [bins], the column
    each kept value comes from [layers, bins]).
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
    return binned, starts, np.minimum(starts + width, n) - 1, starts + pick[..., 0]


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


def _click_targets(centres: np.ndarray, layers: np.ndarray, kept: np.ndarray, hover: np.ndarray) -> go.Scatter:
    """An invisible marker on every cell, carrying [layer, neuron index] of the neuron the cell shows, and the cell's
    hover text (``hover`` [layers, cells]): what a click selects (chart selection events do not reach heatmap
    cells) and what the pointer reads."""
    xs, ys = np.meshgrid(centres, layers)  # [shown layers, cells]
    return go.Scatter(x=xs.ravel(), y=ys.ravel(), mode="markers", name="cells", showlegend=False,
                      customdata=np.stack([ys.ravel(), kept.ravel()], axis=1), meta=dict(role="click-targets"),
                      hovertext=hover.ravel(), hovertemplate="%{hovertext}<extra></extra>",
                      marker=dict(symbol="square", size=float(np.clip(700 / len(centres), 6, 16)), opacity=0.001,
                                  color="black"))


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
    the set first) with open squares, named ``outline_label`` in the legend. A click on a cell selects a point of
    the "cells" trace whose customdata is [layer, index] of the neuron shown there. ``fig.layout.meta`` holds
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
    binned, starts, ends, kept = _bin_max_abs(window, max_bins)  # [shown layers, cells]
    starts, ends, kept = starts + cols[0], ends + cols[0], kept + cols[0]
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
    layer_ids = np.arange(rows[0], rows[1] + 1)
    hover = np.array([[f"layer {layer}<br>{ranges[c]}" + ("" if per_cell == 1 else f" (neuron {kept[i, c]} shown)")
                       + f"<br>score: {binned[i, c]:.4g}" + (f"<br>{shown[i, c]:.2f} of the layer's largest |score|"
                                                             if per_layer else "") + "<br>click: open its card"
                       for c in range(len(centres))] for i, layer in enumerate(layer_ids)])
    fig.add_trace(_click_targets(centres, layer_ids, kept, hover))  # on top: what the pointer reads and clicks
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
    return readable(fig, height=max(420, 140 + 16 * (rows[1] - rows[0] + 1)))
