"""What every figure shares: the palette, projector-sized text and the UpSet matrix colours."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative

PALETTE = qualitative.Plotly
MATRIX_ON, MATRIX_OFF = "#303030", "#d9d9d9"


FONT = 15  # base text size (px) of every figure: legible on a projector


def colour_of(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def readable(fig: go.Figure, height: int | None = None) -> go.Figure:
    """Projector-sized text (base ``FONT``, larger titles) and, when given, a fixed height in px. Axis, legend
    and colour bar sizes are set one by one: a theme's template (Streamlit's) would otherwise set them smaller."""
    fig.update_layout(font=dict(size=FONT), title=dict(font=dict(size=FONT + 5)), height=height,
                      legend=dict(font=dict(size=FONT), title=dict(font=dict(size=FONT))))
    fig.update_xaxes(tickfont_size=FONT, title_font_size=FONT)
    fig.update_yaxes(tickfont_size=FONT, title_font_size=FONT)
    fig.update_traces(colorbar=dict(tickfont=dict(size=FONT), title=dict(font=dict(size=FONT))),
                      selector=dict(type="heatmap"))
    return fig
