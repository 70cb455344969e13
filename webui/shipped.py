"""Results shipped with NeuronLab for the built-in models, as the pages show them: the standard experiments of
the loaded models, their neuron sets, and their evaluations."""
from __future__ import annotations

import streamlit as st

from neuronlab import NeuronSet
from neuronlab.data.shipped import EXPERIMENTS, experiment
from webui import state
from webui.evaluations import show_evaluation
from webui.models import model_store


def shipped_experiments(kind: str = "") -> dict[str, dict]:
    """{name: document} of the standard experiments shipped for the loaded models (by fingerprint), of ``kind``."""
    loaded = state.loaded_keys()
    fingerprints = {role: model_store().get(key).info.fingerprint for role, key in loaded.items()}
    by_spec = {key.spec: fingerprints[role] for role, key in loaded.items()}
    out = {}
    for name, standard in EXPERIMENTS.items():
        if kind and standard.kind != kind or not all(spec in by_spec for spec in standard.models.values()):
            continue
        doc = experiment(name, **{role: by_spec[spec] for role, spec in standard.models.items()})
        if doc is not None:
            out[name] = doc
    return out


def shipped_sets() -> dict[str, NeuronSet]:
    """The neuron sets of the shipped experiments of the loaded models, e.g. demo-donor's own MS(en)."""
    return {f"shipped#{name}": NeuronSet.from_json(doc["result"]["neurons"]).renamed(f"shipped#{name}")
            for name, doc in shipped_experiments("effects").items()}


def effects_results(doc: dict, effect_name: str) -> dict[str, dict]:
    """A shipped effects experiment as ``evaluate_experiment`` results by name: the model as it is, with the
    effect, and each random control (for ``show_evaluation``)."""
    evaluation = doc["result"]["evaluation"]
    mc = {"mc_n": evaluation["utility"]["mc_n"]}
    out = {"as it is": {**evaluation["baseline"], "utility": {**evaluation["baseline"]["utility"], **mc}},
           effect_name: evaluation}
    for run in evaluation["controls"]["runs"]:
        out[f"random neurons, seed {run['seed']}"] = {**run, "utility": {**run["utility"], **mc}}
    return out


def show_shipped_effects(doc: dict, effect_name: str, key: str) -> None:
    """A shipped experiment's table and chart, with what it is and the command that made it."""
    s = doc["settings"]
    st.caption(f"Shipped with NeuronLab for the built-in models: {EXPERIMENTS[doc['name']].about}. Judged replies to "
               f"held-out prompts ({', '.join(s['langs'])}, {s['max_new_tokens']} new tokens), {s['seeds']} random "
               f"control(s). Made by `{doc['made_by']}`.")
    show_evaluation(effects_results(doc, effect_name), key)
