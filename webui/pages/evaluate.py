"""Evaluate: the picked function's metric for the plain, intervened and patched model, side by side: refusal per
language and utility, bias (stereotype and LM scores), or your function's metric (the share of replies that match
its pattern, or that open with one of its openings)."""
import streamlit as st

from webui import state
from webui.bias_eval import bias_evaluation
from webui.evaluations import eval_fill, eval_settings, evaluate_experiment, evaluation_work, show_evaluation
from webui.functions import current_or_stop
from webui.jobs import job, job_note, preset_picker, time_estimate
from webui.models import model_or_stop
from webui.own_eval import own_evaluation
from webui.shipped import shipped_experiments, show_shipped_effects
from webui.widgets import KEEP, describe_interventions, header

LINES = {"refusal": "Refusal on harmful and harmless prompts per language and utility (perplexity, multiple choice)",
         "bias": "Bias: the stereotype and LM scores on held-out bias items",
         "your own": "Your function: its metric (reply pattern or openings), per language and label"}
fn = current_or_stop()
header("Evaluate", f"Function {fn.title}. {LINES[fn.name]}, for the model as loaded, with this session's "
                   "interventions, and with its weight patch.")
intervened = next(iter(state.session_interventions()), "target")  # open on the model with the interventions
role = st.radio("Model", state.ROLES, key="ev_model", horizontal=True, index=state.ROLES.index(intervened), **KEEP)
model_or_stop(role)
interventions = state.session_interventions().get(role, [])
patch = state.session_patch(role)
if fn.name == "bias":
    bias_evaluation(role, interventions, patch)
    st.stop()
if fn.name == "your own":
    own_evaluation(role, fn, interventions, patch)
    st.stop()
if shipped := shipped_experiments("effects"):
    with st.expander("Measured for the built-in models (shipped)", expanded="evaluation" not in st.session_state):
        for name, doc in shipped.items():
            st.markdown(f"**{name}**")
            show_shipped_effects(doc, "suppressed" if doc["settings"]["action"] == "suppress" else "patched",
                                 f"shipped_{name}")
available = ["plain"] + ["intervened"] * bool(interventions) + ["patched"] * (patch is not None)
chosen = st.multiselect("Variants", available, default=available, key=f"ev_variants_{role}",
                        help="plain: the model as loaded (always measured: the effects are told against it); "
                             "intervened: the interventions set on *Intervene & chat*; patched: the weight patch "
                             "applied on *Transfer*. Each appears once you have set one.")
if interventions:
    st.caption(f"intervened = {describe_interventions(interventions)}, switched on on *Intervene & chat* (clear it "
               "in the sidebar).")
if len(available) == 1:
    st.caption("Only the plain model so far: set interventions on *Intervene & chat* or apply a patch on *Transfer* "
               "to compare.")
preset_picker("ev_preset", lambda preset: {**eval_fill("ev", preset.evaluation), "ev_seeds": preset.evaluation.seeds})
settings = eval_settings("ev")
seeds = st.number_input("Random-neuron controls (seeds)", 0, 5, key="ev_seeds", **KEEP,
                        help="Each effect is also run on random neurons with the same count per layer and site, once "
                             "per seed, so that an effect can be told apart from what any neurons would do. A "
                             "patch gets controls when the model it was taken from is loaded as the other role.")
effects = len([name for name in chosen if name != "plain"])
runs = 1 + effects * (1 + seeds)  # the plain model, then each effect and its controls
if chosen and settings["langs"]:
    time_estimate(role, evaluation_work(settings, runs, role))
if st.button("Run evaluation", type="primary", key="ev_run", disabled=not (chosen and settings["langs"])):
    with job("evaluation", runs, "model variants", "Evaluating…") as (report, keep):
        evaluate_experiment(role, interventions if "intervened" in chosen else [],
                            patch if "patched" in chosen else None, settings, seeds, report,
                            lambda results: keep(results, len(results)))
job_note("evaluation")
if "evaluation" in st.session_state:
    show_evaluation(st.session_state["evaluation"], "evaluation")
