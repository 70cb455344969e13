"""The bias evaluation's figure: stereotype and LM scores per language, one bar per model variant."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuronlab.plots.style import colour_of, readable


def bias_figure(results: dict[str, dict]) -> go.Figure:
    """``results``: {variant: ``evaluation.bias.bias_summary`` result}. Left: the stereotype score per language
    (50% dashed: no preference), right: the LM score, each bar with its 95% Wilson interval."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("stereotype score (50% = no preference)", "LM score"),
                        horizontal_spacing=0.1)
    for i, (variant, result) in enumerate(results.items()):
        blocks = {**result["languages"], "overall": result["overall"]}
        langs = list(blocks)
        for col, key in ((1, "stereotype"), (2, "lm")):
            values = [100 * blocks[lang][f"{key}_score"] for lang in langs]
            lows = [100 * blocks[lang][f"{key}_ci95"][0] for lang in langs]
            highs = [100 * blocks[lang][f"{key}_ci95"][1] for lang in langs]
            fig.add_trace(go.Bar(x=langs, y=values, name=variant, marker_color=colour_of(i), showlegend=col == 1,
                                 legendgroup=variant,
                                 error_y=dict(type="data", symmetric=False, array=[h - v for h, v in zip(highs, values)],
                                              arrayminus=[v - lo for v, lo in zip(values, lows)]),
                                 hovertemplate=f"{variant}<br>%{{x}}: %{{y:.0f}}%<extra></extra>"), row=1, col=col)
    fig.add_hline(y=50, line_dash="dash", line_color="#666", row=1, col=1)
    fig.update_yaxes(range=[0, 100], ticksuffix="%")
    fig.update_layout(barmode="group", legend=dict(orientation="h", yanchor="bottom", y=1.12, x=0))
    return readable(fig, height=420)
