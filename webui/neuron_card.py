"""The neuron card: what one neuron does, opened from every place a neuron appears (a heatmap cell, a table row, a
set's list). Its statistics come from one activation pass per model and prompt set, kept for every session, so
after the first card every other one opens at once; the causal effect and the donor comparison run on request.
"""
from __future__ import annotations

import json

import streamlit as st

from neuronlab.analysis.activations import ActivationPass, activation_pass
from neuronlab.data.bias import bundled_bias
from neuronlab.data.prompts import BUNDLED_LANGUAGES, PromptSet
from neuronlab.evaluation.neuron_effect import NeuronEffect, neuron_bias_effect, neuron_effect
from neuronlab.experiments import heldout_prompts
from neuronlab.inspector import DonorComparison, Inspection, compare_in_donor, inspect_neuron
from neuronlab.models.registry import ModelKey
from neuronlab.neurons.scores import Scores
from neuronlab.neurons.sets import Neuron, NeuronSet
from neuronlab.plots.neurons import activation_figure, effect_figure, lens_figure, token_figure
from neuronlab.progress import language_name
from neuronlab.transfer.ranking import weight_diff_scores
from webui import state
from webui.guard import md
from webui.jobs import job
from webui.models import compatibility, model_store, together, use
from webui.sets import available_sets
from webui.widgets import KEEP, chart, progress

PER_LABEL = 8  # prompts per language and label the card reads activations on
EFFECT_PER_LABEL, EFFECT_CONTROLS = 4, 3  # held-out prompts and random neurons of the causal effect
EFFECT_ITEMS = 8  # held-out bias items per language of a bias effect
EFFECTS = "neuron_effects"  # {effect_key: NeuronEffect} measured in this session
PICKS = "card_picks"  # {widget key: what it picked in the last run}
SOURCE = "card_source"  # the card's prompt source: "bundled prompts" or the uploaded file's name


def clicked(event, site: str) -> Neuron | None:
    """The neuron of a clicked heatmap cell (``plots.score_heatmap``'s click targets carry [layer, index])."""
    for point in (event.selection.points if event else []):
        data = point.get("customdata") or []
        if isinstance(data, dict):  # Streamlit hands a point's customdata list over as {"0": …, "1": …}
            data = [data.get(str(i)) for i in range(len(data))]
        if len(data) == 2 and None not in data:
            return Neuron(int(data[0]), site, int(data[1]))
    return None


def open_on_new_pick(key: str, role: str, neuron: Neuron | None) -> None:
    """Open the card on ``neuron`` when widget ``key`` picked it in this run (a pick that stays selected over
    later reruns does not take the card back from a newer one)."""
    seen = st.session_state.setdefault(PICKS, {})
    if neuron is not None and seen.get(key) != (role, neuron):
        state.inspect(role, neuron)
    seen[key] = (role, neuron) if neuron is not None else None


def newest_row(key: str, rows: list[int]) -> int | None:
    """The table row selected in this run, of the ``rows`` selected now (None when only rows were deselected)."""
    seen = st.session_state.setdefault(PICKS, {})
    new = [r for r in rows if r not in seen.get(f"{key}:rows", [])]
    seen[f"{key}:rows"] = list(rows)
    return new[-1] if new else None


def card_prompts(langs: tuple[str, ...]) -> PromptSet:
    """The prompts a card's activations are read on: the scan split of the bundled prompts (the same requests in
    every language), or of the user's uploaded prompt file when the card is set to it."""
    own = state.user_prompts()
    if own is not None and st.session_state.get(SOURCE) == own[0]:
        return own[1].filter(lang=[lang for lang in langs if lang in own[1].languages] or own[1].languages).head(
            PER_LABEL)
    return heldout_prompts(langs, PER_LABEL, split="scan")


def prompt_source() -> None:
    """Bundled prompts or the user's uploaded file (once one was uploaded on Safety neurons)."""
    own = state.user_prompts()
    if own is not None:
        st.radio("Read activations on", ["bundled prompts", own[0]], key=SOURCE, horizontal=True,
                 help="The prompts whose activations, top prompts and peak tokens the card shows.")


def activations(role: str, langs: tuple[str, ...], site: str) -> ActivationPass:
    """The pass of the ``role`` model as loaded (like a scan), built once for every session."""
    prompts = card_prompts(langs)
    with progress(f"Reading the model's activations on {len(prompts)} prompts (once for every neuron)…") as report, \
            use(role, with_patch=False) as lm:
        return activation_pass(lm, prompts, (site,), progress=report)


@st.cache_resource(max_entries=4, show_spinner="Comparing every neuron's weights in the two models…")
def weight_change(donor: ModelKey, target: ModelKey, site: str) -> Scores:
    """Every ``site`` neuron's donor − target weight change (``weight_diff_scores``), once for every session."""
    with together(model_store().get(donor), model_store().get(target)) as (d, t):
        return weight_diff_scores(d, t, (site,))


def membership(role: str) -> dict[str, NeuronSet]:
    """The sets a card says the neuron is in or not: the session's, the scan's, and the role's weight patch."""
    sets = dict(available_sets())
    if (patch := state.session_patch(role)) is not None:
        sets["weight patch"] = patch.neurons
    return sets


def inspection(role: str, neuron: Neuron, langs: tuple[str, ...]) -> Inspection:
    acts = activations(role, langs, neuron.site)
    effect = st.session_state.get(EFFECTS, {}).get(effect_key(role, neuron, langs))
    with use(role, with_patch=False) as lm:
        return inspect_neuron(lm, acts, neuron, membership(role), effect)


def effect_key(role: str, neuron: Neuron, langs: tuple[str, ...]) -> tuple:
    """(ModelKey, Neuron, langs) of a refusal effect; a bias effect's key ends with "bias"."""
    return (state.loaded_keys()[role], neuron, langs) + (("bias",) if state.function() == "bias" else ())


def bias_langs(langs: tuple[str, ...]) -> list[str]:
    """The card's languages that have bundled bias items (English when none has)."""
    return [lang for lang in langs if lang in bundled_bias().languages] or ["en"]


def measure_effect(role: str, neuron: Neuron, langs: tuple[str, ...]) -> None:
    runs = 1 + 2 * (1 + EFFECT_CONTROLS)
    bias = state.function() == "bias"
    with job("neuron_effect", runs, "measurements", "Measuring the causal effect…") as (report, keep), \
            use(role, with_patch=False) as lm:
        if bias:
            items = bundled_bias(bias_langs(langs), split="heldout").spread(EFFECT_ITEMS)
            effect = neuron_bias_effect(lm, neuron, list(items), controls=EFFECT_CONTROLS, progress=report)
        else:
            effect = neuron_effect(lm, neuron, heldout_prompts(langs, EFFECT_PER_LABEL), langs,
                                   controls=EFFECT_CONTROLS, progress=report)
        keep(effect, runs)
    st.session_state.setdefault(EFFECTS, {})[effect_key(role, neuron, langs)] = effect


def donor_comparison(role: str, neuron: Neuron, langs: tuple[str, ...]) -> DonorComparison | None:
    other = next(r for r in state.ROLES if r != role)
    keys = state.loaded_keys()
    if other not in keys:
        st.info(f"Load a {other} model to compare this neuron in it.")
        return None
    target_key, donor_key = (keys[role], keys[other]) if role == "target" else (keys[other], keys[role])
    if not (fit := compatibility(donor_key, target_key)).compatible:
        st.info("The two models cannot be compared neuron by neuron: " + md("; ".join(fit.problems)))
        return None
    diff = weight_change(donor_key, target_key, neuron.site)
    target_role = "target" if role == "target" else other
    mine, theirs = activations(role, langs, neuron.site), activations(other, langs, neuron.site)
    target_pass, donor_pass = (mine, theirs) if role == target_role else (theirs, mine)
    return compare_in_donor(neuron, donor_key.spec, diff, target_pass, donor_pass)


def header_row(role: str, found: Inspection) -> None:
    layer, site, index = found.profile.neuron
    st.markdown(f"#### 🔎 Neuron {layer} {site} {index} · {role} ({md(found.profile.model)})")
    inside = [name for name, yes in found.membership.items() if yes]
    st.caption("In: " + (", ".join(md(n) for n in inside) if inside else "none of this session's sets") + ".")


def actions(role: str, neuron: Neuron) -> None:
    layer, site, index = neuron
    left, middle, right = st.columns(3)
    with left.popover("Add to a set", icon=":material/playlist_add:"):
        sets = state.neuron_sets()
        name = st.selectbox("Set", list(sets) + ["new set…"], key="card_set")
        if name == "new set…":
            name = st.text_input("Name", value="inspected", key="card_set_name").strip()
        if st.button("Add", key="card_add", disabled=not name):
            sets[name] = (sets.get(name, NeuronSet()) | NeuronSet([neuron])).renamed(name)
            st.success(f"{md(name)} has {len(sets[name])} neurons.")
    if middle.button("Suppress now and chat", key="card_chat", icon=":material/chat:"):
        state.suppress_in_chat(role, f"{layer} {site} {index}")
        st.switch_page("webui/pages/intervene.py")
    other = next(r for r in state.ROLES if r != role)
    if right.button(f"Open in the {other}", key="card_other", disabled=other not in state.loaded_keys(),
                    icon=":material/swap_horiz:"):
        state.inspect(other, neuron)
        st.rerun()


def profile_tabs(found: Inspection, tabs) -> None:
    p = found.profile
    with tabs[0]:
        measure = st.radio("Measure", ["last", "max"], horizontal=True, key="card_measure",
                           format_func={"last": "last prompt token", "max": "highest over the prompt"}.get)
        chart(activation_figure(p, measure), "card_acts",
              f"one box per language and label ({' beside '.join(dict.fromkeys(label for by in p.stats.values() for label in by))}): the box spans the "
              "middle half of the prompts, the whiskers 5%–95%, the line the median; a neuron of the function has "
              "its boxes apart.")
    with tabs[1]:
        for title, hits in (("Fires most on", p.top), ("Most negative on", p.negative)):
            st.markdown(f"**{title}**")
            st.dataframe({"value": [round(h.value, 3) for h in hits], "peak token": [h.token for h in hits],
                          "lang": [h.lang for h in hits], "label": [h.label for h in hits],
                          "prompt": [h.text for h in hits]}, hide_index=True)
        if p.top and p.top[0].values:
            chart(token_figure(p.top[0]), "card_tokens",
                  "the neuron's activation at every token of the prompt it fires on most; the peak token is red.")
    with tabs[2]:
        if p.promoted:
            chart(lens_figure(p), "card_lens",
                  "the neuron's output direction read through the final norm and the unembedding (logit lens): "
                  "the tokens it pushes the next-token prediction toward (left) and away from (right).")
        else:
            st.info(f"{p.neuron.site} neurons do not write to the residual stream directly: no logit lens.")


EFFECT_TEXT = {  # (what the button measures, what the chart's bars are)
    "refusal": (f"the refusal score on {EFFECT_PER_LABEL} held-out prompts per language and label",
                "the change of the refusal score (log-probability that the reply opens with a refusal)"),
    "bias": (f"the mean stereotype preference on {EFFECT_ITEMS} held-out bias items per language (English, French "
             "or Spanish)", "the change of the mean stereotype preference (how much likelier, in nats per token, the "
                            "model finds the stereotype sentence than its opposite; toward 0 is less biased)")}


def effect_tab(role: str, neuron: Neuron, langs: tuple[str, ...], effect: NeuronEffect | None) -> None:
    function = state.function()
    if function not in EFFECT_TEXT:
        st.info("No causal effect for your own function here: its metric needs generated replies for every "
                "change. Measure it on *Evaluate* with the neuron suppressed (**Suppress now and chat**).")
        return
    measured, bars = EFFECT_TEXT[function]
    if effect is None:
        st.caption(f"Switch this neuron alone off, then scale it ×2, and measure {measured}, beside "
                   f"{EFFECT_CONTROLS} random neurons of its layer.")
        if st.button("Measure the causal effect", key="card_effect", type="primary"):
            measure_effect(role, neuron, langs)
            st.rerun()
        return
    chart(effect_figure(effect), "card_effect_chart",
          f"{bars} when the neuron is switched off (left) or scaled up (right); grey: the same change on random "
          "neurons of its layer (± sd). A bar far outside the grey ones is this neuron's own effect.")


def donor_tab(role: str, neuron: Neuron, langs: tuple[str, ...]) -> None:
    if not st.toggle("Compare with the other model", key="card_compare"):
        return
    found = donor_comparison(role, neuron, langs)
    if found is None:
        return
    left, right = st.columns(2)
    left.metric("weight change (donor − target)", f"{found.weight_change:.4g}")
    if found.weight_change:
        right.metric("rank among all neurons", f"{found.rank:,} of {found.of:,}")
    else:  # every unchanged neuron ties after the changed ones
        right.metric("rank among all neurons", "unchanged", help=f"{found.rank - 1:,} of {found.of:,} neurons changed")
    st.dataframe([{"language": language_name(lang), **{f"{label} activation change": round(v, 4)
                                                       for label, v in by.items()}}
                  for lang, by in found.activation_change.items()], hide_index=True)
    st.caption(f"Donor ({md(found.donor)}) minus target, mean activation at the last prompt token on the same prompts.")


def neuron_card(default_langs: tuple[str, ...] = ("en", "zh")) -> None:
    """The card of the neuron clicked last (nothing before a click)."""
    chosen = state.inspected()
    if chosen is None or chosen[0] not in state.loaded_keys():
        return
    role, neuron = chosen
    with st.container(border=True):
        langs = tuple(st.multiselect("Card languages", BUNDLED_LANGUAGES, default=list(default_langs),
                                     key="card_langs", **KEEP) or default_langs)
        prompt_source()
        found = inspection(role, neuron, langs)
        header_row(role, found)
        actions(role, neuron)
        tabs = st.tabs(["Activations", "Top prompts", "Writes toward", "Causal effect", "Donor vs target"])
        profile_tabs(found, tabs)
        with tabs[3]:
            effect_tab(role, neuron, langs, found.effect)
        with tabs[4]:
            donor_tab(role, neuron, langs)
        left, right = st.columns(2)
        stem = f"neuron-{neuron.layer}-{neuron.site}-{neuron.index}"
        left.download_button("Card data (JSON)", lambda: json.dumps(found.to_dict(), indent=1), f"{stem}.json",
                             "application/json", key="card_json", on_click="ignore")
        right.download_button("Card data (CSV)", found.to_csv, f"{stem}.csv", "text/csv", key="card_csv",
                              on_click="ignore")
