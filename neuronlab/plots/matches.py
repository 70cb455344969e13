"""The figure of a user-defined function's evaluation: the share of hits (replies that match its pattern, or prompts
whose reply opens with one of its openings), per language and label, one bar per model variant."""
from __future__ import annotations

import plotly.graph_objects as go

from neuronlab.plots.style import colour_of, readable


def hits_figure(results: dict[str, dict], labels: tuple[str, str], counted: str, title: str) -> go.Figure:
    """``results``: {variant: ``evaluation.functions.match_rates`` or ``opening_rates`` result ({lang: {label:
    block}})}; ``counted``: what a hit is (the y axis). One group of bars per language and label (the behaviour's
    label first), each bar with its 95% Wilson interval."""
    fig = go.Figure()
    for i, (variant, by_lang) in enumerate(results.items()):
        cells = [(lang, label) for lang in by_lang for label in labels if label in by_lang[lang]]
        blocks = [by_lang[lang][label] for lang, label in cells]
        values = [100 * b["hit_rate"] for b in blocks]
        fig.add_trace(go.Bar(
            x=[f"{lang} {label}" for lang, label in cells], y=values, name=variant, marker_color=colour_of(i),
            error_y=dict(type="data", symmetric=False, array=[100 * b["ci95"][1] - v for b, v in zip(blocks, values)],
                         arrayminus=[v - 100 * b["ci95"][0] for b, v in zip(blocks, values)]),
            hovertemplate=f"{variant}<br>%{{x}}: %{{y:.0f}}% {counted}<extra></extra>"))
    fig.update_layout(barmode="group", title=f"{title}: {labels[0]} vs {labels[1]} prompts",
                      xaxis_title="language and label", yaxis_title=counted,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    fig.update_yaxes(range=[0, 100], ticksuffix="%")
    return readable(fig, height=420)
