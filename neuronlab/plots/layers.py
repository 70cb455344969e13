"""The layer view: where safety lives, one row per measure on a shared layer axis."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuronlab.plots.style import colour_of, readable

ROW_TITLES = {"counts": "safety neurons", "effect": "refusal score change", "weight": "share of weight change"}


def layer_view_figure(counts: Mapping[str, Sequence[int]], effect: Mapping[str, Sequence[float]] | None = None,
                      weight_share: Sequence[float] | None = None, title: str = "",
                      counts_title: str = ROW_TITLES["counts"]) -> go.Figure:
    """Bars per layer: the count of each named set's neurons (``counts``: {"MS en": [per layer], "SS": …}), the
    refusal-score change when a layer's set is switched off (``effect``: {"harmful": [per layer], …}), and each
    layer's share of the donor → target weight change (``weight_share``, fractions summing to 1). Rows without
    data are left out; ``fig.layout.meta["rows"]`` names the rows shown, top to bottom. ``counts_title`` names
    the neurons counted (a function's: "bias neurons")."""
    rows = ["counts"] + ["effect"] * (effect is not None) + ["weight"] * (weight_share is not None)
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.06)
    colour = 0
    for name, values in counts.items():
        fig.add_trace(go.Bar(x=list(range(len(values))), y=list(values), name=name, marker_color=colour_of(colour),
                             hovertemplate=f"{name}<br>layer %{{x}}: %{{y}} neurons<extra></extra>"), row=1, col=1)
        colour += 1
    if effect is not None:
        for label, values in effect.items():
            fig.add_trace(go.Bar(x=list(range(len(values))), y=list(values), name=f"off: {label}",
                                 marker_color=colour_of(colour),
                                 hovertemplate=f"{label} prompts<br>layer %{{x}}: %{{y:+.3f}}<extra></extra>"),
                          row=rows.index("effect") + 1, col=1)
            colour += 1
    if weight_share is not None:
        fig.add_trace(go.Bar(x=list(range(len(weight_share))), y=[100 * v for v in weight_share],
                             name="weight change", marker_color=colour_of(colour),
                             hovertemplate="layer %{x}: %{y:.1f}% of the change<extra></extra>"),
                      row=rows.index("weight") + 1, col=1)
    titles = {**ROW_TITLES, "counts": counts_title}
    for i, row in enumerate(rows, start=1):
        fig.update_yaxes(title_text=titles[row] + (" (%)" if row == "weight" else ""), row=i, col=1)
    fig.update_xaxes(title_text="layer", dtick=1 if len(next(iter(counts.values()), [])) <= 32 else None,
                     row=len(rows), col=1)
    fig.update_layout(barmode="group", title=title or None, meta={"rows": rows}, clickmode="event+select",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return readable(fig, height=220 + 200 * len(rows))
