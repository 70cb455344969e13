"""Transfer charts: how far a donor's weights are from the target's, and the minimal-subset curve."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuronlab.plots.style import FONT, colour_of, readable

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
        constraintext="none", cliponaxis=False, marker_color=colour_of(0),
        hovertemplate="layer %{x}: cosine %{customdata:.10f}<extra></extra>"))
    note = f"{int(same.sum())} of {len(cosine)} layers have the same weights" if same.any() else ""
    fig.update_layout(title=dict(text=title, subtitle=dict(text=note)), xaxis_title="layer", bargap=0.15,
                      showlegend=False, meta=dict(same=np.flatnonzero(same).tolist()))
    fig.update_yaxes(type="log", range=[low, high], dtick=1, exponentformat="power",
                     title_text="1 − cosine (log scale)<br>taller = more changed")
    return readable(fig, height=440)


# ---- transfer search ------------------------------------------------------------------------------
# per function: (column, label, axis) of each series of a curve, its goal's series first
CURVE_SERIES = {"refusal": (("harmful", "harmful refusal", "y"), ("harmless", "false refusal", "y"),
                            ("perplexity", "perplexity", "y2")),
                "bias": (("stereotype", "stereotype score", "y"), ("lm", "LM score", "y"),
                         ("perplexity", "perplexity", "y2"))}
CURVE_TEXT = {"refusal": ("Refusal and perplexity vs neurons moved", "refusal rate (approximate)"),
              "bias": ("Bias: stereotype score and perplexity vs neurons moved", "stereotype score, LM score")}


def transfer_curve_figure(curve: pd.DataFrame, goal: float | None = None, found_k: int | None = None,
                          title: str | None = None) -> go.Figure:
    """Refusal rates (left axis) and perplexity (right axis) against neurons moved, the ranked set solid
    and random sets of the same per-layer counts dashed (± standard error over seeds), from
    ``SearchResult.to_frame()``; the unpatched destination (k = 0) is drawn as dotted horizontal lines and
    the smallest set that met the goal as a star. A bias curve (``bias_subset``: a ``stereotype`` column) draws
    the stereotype and LM scores instead, its goal as the band around 50% it names."""
    function = "bias" if "stereotype" in curve else "refusal"
    default_title, left_title = CURVE_TEXT[function]
    steps, start = curve[curve["k"] > 0], curve[curve["k"] == 0]
    share = steps["share"].to_numpy()
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for i, (key, label, axis) in enumerate(CURVE_SERIES[function]):
        colour = colour_of(i)
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
    if goal is not None and function == "bias":
        width = abs(goal - 0.5)
        fig.add_hrect(y0=0.5 - width, y1=0.5 + width, fillcolor="black", opacity=0.08, line_width=0,
                      annotation_text=f"goal {0.5 - width:.0%}–{0.5 + width:.0%}")
    elif goal is not None:
        fig.add_hline(y=goal, line=dict(color="black", dash="dot"), annotation_text=f"goal {goal:.0%}")
    if found_k is not None:
        hit = steps[steps["k"] == found_k]
        fig.add_trace(go.Scatter(x=hit["k"], y=hit[CURVE_SERIES[function][0][0]], name=f"goal met: {found_k} neurons",
                                 mode="markers", marker=dict(symbol="star", size=16, color="black"),
                                 hovertemplate="goal met with %{x} neurons<extra></extra>"))
    fig.update_layout(title=dict(text=title or default_title), hovermode="closest", legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(type="log", title_text="neurons moved (log scale)")
    fig.update_yaxes(title_text=left_title, range=[0, 1.05], secondary_y=False)
    fig.update_yaxes(title_text="perplexity", secondary_y=True)
    return readable(fig, height=520)
