"""The evaluation figure: refusal rates, perplexity and multiple-choice accuracy per variant, with intervals."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuronlab.plots.style import FONT, colour_of, readable

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
                showlegend=panel == 0, marker_color=colour_of(i),
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
    return readable(fig, height=680)
