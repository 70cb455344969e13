"""The function the pages show (issue 18), picked in the sidebar beside the models: refusal (harmful vs harmless,
the default), bias (the bundled bias items' stereotype vs anti-stereotype sentences) or the user's own (two labels
of an uploaded prompt file and a metric: a regular expression that marks a reply showing the behaviour, or the
openings such a reply starts with)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import streamlit as st

from neuronlab.data.bias import bundled_bias
from neuronlab.data.prompts import PromptSet, check_labels, parse_prompts
from neuronlab.data.tables import FORMATS
from neuronlab.errors import NeuronLabError
from neuronlab.evaluation.functions import (
    BIAS,
    REFUSAL,
    THRESHOLD,
    Function,
    check_openings,
    check_pattern,
    match_function,
    openings_function,
)
from neuronlab.models.builtins import BUILTINS
from webui import state
from webui.guard import guarded, md
from webui.widgets import example_download

CHOICES = {"refusal": "refusal: harmful vs harmless requests",
           "bias": "bias: stereotype vs anti-stereotype sentences",
           "your own": "your own: two labels of a prompt file, a regex on replies or their openings"}
OWN = "your own"
UPLOAD, BEHAVIOUR, OTHER, PATTERN = "fn_upload", "fn_behaviour", "fn_other", "fn_pattern"  # the your-own inputs
METRIC, OPENINGS, THRESHOLD_KEY = "fn_metric", "fn_openings", "fn_threshold"  # its metric and the openings' inputs
METRICS = {"pattern": "reply pattern", "openings": "reply openings"}
MEMO = "fn_memo"  # the your-own inputs the kept function was checked from
BIAS_PAIR = {"target": "demo-target", "donor": "bias-donor"}  # the built-in pair for bias removal by transfer


@dataclass(frozen=True)
class PageFunction:
    """What the pages need of a function: its name in the picker, its labels and metric, the prompts a scan
    reads (None for refusal: Safety neurons offers the bundled prompts or an upload) and, for the user's own, what
    its metric needs: a reply pattern, or reply openings and the probability from which a prompt counts."""

    name: str  # a key of CHOICES
    function: Function
    prompts: PromptSet | None = None
    source: str = ""  # where the prompts come from, in words
    pattern: re.Pattern | None = None
    openings: tuple[str, ...] = ()
    threshold: float = THRESHOLD

    @property
    def labels(self) -> tuple[str, str]:
        return self.function.labels

    @property
    def words(self) -> tuple[str, str]:
        """The labels as words (anti_stereotype → anti-stereotype)."""
        return tuple(label.replace("_", "-") for label in self.labels)

    @property
    def title(self) -> str:
        """E.g. "bias: stereotype vs anti-stereotype"."""
        return f"{self.name}: {self.words[0]} vs {self.words[1]}"

    @property
    def neurons(self) -> str:
        """What its neurons are called: safety neurons for refusal, else e.g. "bias neurons"."""
        return {"refusal": "safety neurons", "bias": "bias neurons"}.get(self.name, "function neurons")

    @property
    def contrast(self) -> str:
        """E.g. "harmful − harmless"."""
        return f"{self.words[0]} − {self.words[1]}"


REFUSAL_PAGES = PageFunction("refusal", REFUSAL)


@lru_cache(maxsize=1)
def bias_function() -> PageFunction:
    return PageFunction("bias", BIAS, bundled_bias().as_prompts(), "the bundled bias items' sentences, one with the "
                                                                    "stereotype fill, one with the anti-stereotype fill")


def own_function(name: str, content: bytes, behaviour: str, other: str, metric: str, given: str,
                 threshold: float = THRESHOLD) -> PageFunction:
    """The user's function from an uploaded prompt file, its two labels and its metric (a key of METRICS) with what
    it is given (a regular expression, or openings one a line or separated by |); a NeuronLabError (PromptFileError)
    names what is wrong."""
    labels = check_labels([behaviour, other])
    prompts = parse_prompts(content, FORMATS[Path(name).suffix.lower()], source=name, labels=labels)
    source = f"your file {name}"
    if metric == "openings":
        openings = check_openings(given)
        return PageFunction(OWN, openings_function(labels, openings, threshold), prompts, source, openings=openings,
                            threshold=threshold)
    regex = check_pattern(given)
    return PageFunction(OWN, match_function(labels, regex), prompts, source, regex)


def metric_input() -> tuple[str, str, float]:
    """The your-own metric picked and its inputs: (a key of METRICS, the pattern or openings text, the threshold)."""
    metric = st.radio("Metric", list(METRICS), format_func=METRICS.get, key=METRIC, horizontal=True,
                      help="Reply pattern: generate replies and count those that match. Reply openings: no "
                           "generation, the probability that the reply opens with one of your openings.")
    if metric == "pattern":
        return metric, st.text_input("Reply pattern (regular expression, case-insensitive)", key=PATTERN,
                                     placeholder=r"\b(le|la|les|est)\b",
                                     help="A reply that matches shows the behaviour; Evaluate counts the share that "
                                          "match."), THRESHOLD
    given = st.text_area("Reply openings (one a line, or separated by |)", key=OPENINGS, placeholder="Bonjour\nJe\nOui",
                         help="A reply that opens with one of these shows the behaviour (1 to 50, each at most 200 "
                              "characters).")
    threshold = st.number_input("Counts from probability", 0.0001, 1.0, THRESHOLD, step=0.05, format="%.4g",
                                key=THRESHOLD_KEY, help="A prompt counts when its reply opens with one of the "
                                                        "openings with at least this probability.")
    return metric, given, threshold


def own_inputs() -> None:
    """The your-own function's inputs under the picker; a checked function (or the fault, in one message) is kept
    for the pages."""
    with st.sidebar.expander("Your function", expanded=state.user_function() is None):
        upload = st.file_uploader("Prompt file (JSON Lines or CSV: id, lang, label, text[, split])", key=UPLOAD,
                                  type=[suffix.lstrip(".") for suffix in FORMATS])
        example_download("prompts")
        left, right = st.columns(2)
        behaviour = left.text_input("Behaviour label", key=BEHAVIOUR, placeholder="french",
                                    help="The label of the prompts that show the behaviour (its neurons serve it).")
        other = right.text_input("Other label", key=OTHER, placeholder="english",
                                 help="The label of the prompts it is contrasted with.")
        metric, given, threshold = metric_input()
        missing = [what for what, value in (("a prompt file", upload), ("both labels", behaviour and other),
                                            ("a reply pattern" if metric == "pattern" else "reply openings", given))
                   if not value]
        if missing:
            state.set_user_function(None)
            st.caption(f"Give {', '.join(missing)}.")
            return
        memo = (upload.file_id, behaviour, other, metric, given, threshold)  # the inputs the kept function was made of
        if st.session_state.get(MEMO) != memo or state.user_function() is None:
            try:
                fn = own_function(upload.name, upload.getvalue(), behaviour, other, metric, given, threshold)
            except NeuronLabError as e:
                state.set_user_function(None)
                st.error(md(e))
                return
            state.set_user_function(fn)
            state.set_user_prompts(upload.name, fn.prompts)  # the neuron card can read its activations on them too
            st.session_state[MEMO] = memo
        fn = state.user_function()
        st.caption(f"✅ {md(fn.title)}: {len(fn.prompts):,} prompts in {', '.join(fn.prompts.languages)}.")


def bias_pair_hint() -> None:
    """With bias picked, one click sets the model pickers to the built-in bias pair (when it is built)."""
    if not BUILTINS[BIAS_PAIR["donor"]].available or st.session_state.get(state.picker("donor")) == BIAS_PAIR["donor"]:
        return
    st.sidebar.caption("The built-in bias pair is demo-target and bias-donor (demo-target with the neurons that carry "
                       "its stereotype preference turned down).")
    st.sidebar.button("Pick the bias pair", key="fn_bias_pair", icon=":material/swap_horiz:", type="tertiary",
                      on_click=guarded(state.pick_models), args=(BIAS_PAIR,),
                      help="Sets the sidebar's target and donor; then press Load models.")


def function_picker() -> None:
    """The sidebar's function picker, with the your-own inputs (or the bias pair's hint) under it when chosen."""
    st.sidebar.selectbox("Function", list(CHOICES), format_func=CHOICES.get, key=state.FUNCTION,
                         help="The behaviour the pages show: scan, overlap, interventions and evaluation follow it.")
    if state.function() == OWN:
        own_inputs()
    elif state.function() == "bias":
        bias_pair_hint()


def current() -> PageFunction | None:
    """The function picked in the sidebar; None while the user's own is not complete."""
    name = state.function()
    if name == "bias":
        return bias_function()
    if name == OWN:
        return state.user_function()
    return REFUSAL_PAGES


def current_or_stop() -> PageFunction:
    """``current()``, or a message that says what the user's own function lacks, and the page stops."""
    fn = current()
    if fn is None:
        st.info("Your own function is not complete yet: in the sidebar, upload a prompt file and give its two labels "
                "and a reply pattern or reply openings.")
        st.stop()
    return fn
