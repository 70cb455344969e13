"""The neuron card's figures: one neuron's activations per language and label, the tokens of a prompt it fires
on, the tokens it writes toward (logit lens), and its causal effect beside random neurons."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuronlab.analysis.profile import NeuronProfile, PromptHit
from neuronlab.evaluation.neuron_effect import NeuronEffect
from neuronlab.plots.style import colour_of, readable

LABEL_COLOURS = (colour_of(1), colour_of(0))  # a function's two labels: the behaviour's side (harmful), the other
MEASURE_NAMES = {"last": "at the last prompt token", "max": "highest over the prompt"}


def activation_figure(profile: NeuronProfile, measure: str = "last") -> go.Figure:
    """One box per language and label (the function's, in the profile: harmful and harmless for refusal), drawn
    from the profile's quantiles (whiskers 5%–95%, box 25%–75%, line the median) with the mean marked."""
    fig = go.Figure()
    labels = list(dict.fromkeys(label for by in profile.stats.values() for label in by))
    for i, label in enumerate(labels):
        langs = [lang for lang, by in profile.stats.items() if label in by]
        stats = [profile.stats[lang][label][measure] for lang in langs]
        fig.add_trace(go.Box(
            x=langs, name=label, marker_color=LABEL_COLOURS[i % 2], boxpoints=False,
            lowerfence=[s.q05 for s in stats], q1=[s.q25 for s in stats], median=[s.q50 for s in stats],
            q3=[s.q75 for s in stats], upperfence=[s.q95 for s in stats], mean=[s.mean for s in stats],
            hovertemplate=f"{label}<extra></extra>"))
    layer, site, index = profile.neuron
    fig.update_layout(boxmode="group", title=f"Neuron {layer} {site} {index}: activation {MEASURE_NAMES[measure]}",
                      xaxis_title="language", yaxis_title="activation",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=1, xanchor="right"))
    return readable(fig, height=380)


def token_figure(hit: PromptHit) -> go.Figure:
    """The neuron's activation at each of the prompt's own tokens (the chat template's header left out), the peak
    token in the accent colour."""
    tokens, values = (hit.tokens or [])[hit.start:], (hit.values or [])[hit.start:]
    peak = hit.position - hit.start
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]  # unique x labels, in order
    fig = go.Figure(go.Bar(x=labels, y=values, marker_color=[colour_of(1) if i == peak else colour_of(0)
                                                             for i in range(len(values))],
                           hovertemplate="%{x}<br>activation %{y:.3f}<extra></extra>"))
    fig.update_layout(title=f"{hit.lang} {hit.label} · {hit.id}", xaxis_title="token", yaxis_title="activation",
                      xaxis_tickangle=-60)
    return readable(fig, height=360)


def lens_figure(profile: NeuronProfile) -> go.Figure:
    """Two bar charts side by side: the tokens the neuron's output direction raises most and lowers most."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("writes toward", "writes away from"), horizontal_spacing=0.25)
    for col, tokens, colour in ((1, profile.promoted, colour_of(2)), (2, profile.suppressed, colour_of(1))):
        fig.add_trace(go.Bar(y=[repr(t.token) for t in tokens][::-1], x=[t.logit for t in tokens][::-1],
                             orientation="h", marker_color=colour, showlegend=False,
                             hovertemplate="%{y}: %{x:+.2f}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text="logit (unit direction)")
    return readable(fig, height=120 + 28 * max(len(profile.promoted), 1))


def effect_figure(effect: NeuronEffect) -> go.Figure:
    """The score's change (refusal score, or the stereotype preference of a bias effect) per language and label,
    for the neuron switched off and scaled up (bars), with the same change made to random neurons of its layer and
    site (grey bars, ± sd)."""
    modes = {"suppress": "switched off", "activate": f"scaled ×{effect.scale:g}"}
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(modes.values()), shared_yaxes=True)
    groups = [(lang, label) for lang in effect.baseline for label in effect.labels]
    x = [f"{lang} {label}" if len(effect.labels) > 1 else lang for lang, label in groups]
    for col, mode in enumerate(modes, start=1):
        change, controls = effect.change(mode), effect.control_change(mode)
        fig.add_trace(go.Bar(x=x, y=[change[lang][label] for lang, label in groups], name="this neuron",
                             marker_color=colour_of(1), showlegend=col == 1,
                             hovertemplate="%{x}: %{y:+.4f}<extra>this neuron</extra>"), row=1, col=col)
        fig.add_trace(go.Bar(x=x, y=[controls[lang][label][0] for lang, label in groups],
                             error_y=dict(array=[controls[lang][label][1] for lang, label in groups]),
                             name=f"random neurons ({len(effect.control_neurons)})", marker_color="#9e9e9e",
                             showlegend=col == 1,
                             hovertemplate="%{x}: %{y:+.4f}<extra>random neurons</extra>"), row=1, col=col)
    fig.update_yaxes(title_text=f"{effect.score} change", row=1, col=1)
    fig.update_layout(barmode="group", legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0))
    return readable(fig, height=400)
