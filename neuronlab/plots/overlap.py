"""How safety-neuron sets overlap: counts per layer, Jaccard heatmaps, Venn diagrams and UpSet charts."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuronlab.analysis.overlap import counts_by_layer, exclusive_regions, jaccard_by_layer, jaccard_matrix
from neuronlab.neurons.sets import NeuronSet
from neuronlab.plots.style import FONT, MATRIX_OFF, MATRIX_ON, colour_of, readable


def _region_text(names: Sequence[str]) -> str:
    """"only in en", "only in en and zh", "only in en, zh and ko"."""
    names = list(names)
    return "only in " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])


def _ordered(region: frozenset[str], order: Sequence[str]) -> list[str]:
    return [name for name in order if name in region]


# ---- per-layer counts and Jaccard -----------------------------------------------------------------
def counts_by_language_figure(sets: Mapping[str, NeuronSet], n_layers: int,
                              title: str = "Safety neurons per layer, by language", legend: str = "language") -> go.Figure:
    """Grouped bars: neurons per layer, one series per set."""
    counts = counts_by_layer(sets, n_layers)  # [layers, sets]
    fig = go.Figure([
        go.Bar(x=counts.index.to_numpy(), y=counts[name].to_numpy(), name=name, marker_color=colour_of(i),
               hovertemplate=f"{name}<br>layer %{{x}}: %{{y}} neurons<extra></extra>")
        for i, name in enumerate(counts.columns)
    ])
    fig.update_layout(title=dict(text=title), barmode="group", xaxis_title="layer", yaxis_title="neurons",
                      legend_title_text=legend)
    return readable(fig)


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
    return readable(fig)


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
    return readable(fig)


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
        fig.add_shape(type="circle", x0=cx - 1, y0=cy - 1, x1=cx + 1, y1=cy + 1, line=dict(color=colour_of(i), width=2),
                      fillcolor=colour_of(i), opacity=0.25, layer="below")
        direction = np.array([cx, cy]) / np.hypot(cx, cy)
        lx, ly = np.array([cx, cy]) + direction * 1.05
        fig.add_annotation(
            x=lx, y=ly, text=f"<b>{name}</b> ({len(sets[name])})", showarrow=False, name=f"set:{name}",
            font=dict(size=FONT + 7, color=colour_of(i)), hovertext=f"{name}: {len(sets[name])} neurons in all",
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
    return readable(fig, height=520)


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
                         marker_color=[colour_of(i) for i in range(len(names))], name="set size",
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
    return readable(fig, height=360 + 40 * len(names))
