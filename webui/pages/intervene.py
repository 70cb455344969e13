"""Intervene & chat: switch neurons off or scale them up and chat with the changed model (intervened, patched or both) beside the plain one."""
from contextlib import closing

import streamlit as st

from neuronlab import Intervention, NeuronSet, NeuronSetError
from neuronlab.models.generation import Sampling
from neuronlab.models.host import HostedModel
from neuronlab.neurons.patches import Patch
from neuronlab.neurons.sets import neuron_sets_json, parse_neurons, read_neuron_sets
from webui import state
from webui.functions import current_or_stop
from webui.guard import guarded, md
from webui.models import model_or_stop
from webui.refusals import estimate_refusals, refusal_estimates
from webui.sets import available_sets
from webui.widgets import KEEP, describe_interventions, example_download, header, patch_label

TYPED = state.IV_TYPED_NAME
SIDES = {"changed": "🧪 with your changes", "plain": "as loaded"}


def set_files(shared: HostedModel) -> None:
    """Upload neuron sets (checked against the model) and download the session's sets."""
    with st.expander("Neuron set files (JSON)"):
        upload = st.file_uploader("Upload neuron sets: one set, or a neurons.json of several", type=["json"],
                                  key="iv_upload")
        example_download("neuron_sets")
        if upload is not None:
            try:
                sets = read_neuron_sets(upload.getvalue(), upload.name, shared.arch)
            except NeuronSetError as e:  # names the file (and the set) already
                st.error(md(e))
            else:
                state.neuron_sets().update(sets)
                st.success(f"Loaded {md(', '.join(sets))} from {md(upload.name)}.")
        mine = available_sets()
        st.download_button("Download all sets (JSON)", lambda: neuron_sets_json(mine), "neuron_sets.json",
                           "application/json", key="iv_download", disabled=not mine, on_click="ignore")


def chosen_sets(shared: HostedModel) -> dict[str, NeuronSet]:
    """The picked and typed neuron sets that fit the model (the others are reported)."""
    sets = available_sets()
    names = st.multiselect("Neuron sets", list(sets), key=state.IV_SETS, **KEEP,
                           help="Sets you saved on the other pages, uploaded, and the last scan's (scan#…).")
    typed = st.text_input("Single neurons", key=state.IV_TYPED, placeholder="20 mlp 5; 20 mlp 17; 0-1 mlp *", **KEEP,
                          help="LAYERS SITE INDICES entries split by ';'; LAYERS and INDICES are comma lists of numbers, ranges a-b "
                               "and * (all), e.g. 3 mlp 17,20.")
    chosen = {}
    for name in names + ([TYPED] if typed.strip() else []):
        try:
            chosen[name] = parse_neurons(typed, shared.arch) if name == TYPED else sets[name].validate(shared.arch)
        except NeuronSetError as e:
            st.error(f"{md(name)}: {md(e)}")
    return chosen


def interventions_for(chosen: dict[str, NeuronSet]) -> list[Intervention]:
    """Suppress or activate (with a scale) per chosen set."""
    out = []
    for name, neurons in chosen.items():
        left, right = st.columns([1, 2])
        mode = left.radio(f"**{md(name)}** ({len(neurons):,} neurons)", ["suppress", "activate"], horizontal=True,
                          key=f"iv_mode:{name}", **KEEP)
        scale = right.slider("scale (activate)", 0.0, 10.0, 2.0, 0.5, key=f"iv_scale:{name}",
                             disabled=mode != "activate", **KEEP)
        out.append(Intervention(neurons, mode, scale if mode == "activate" else None, label=name))
    return out


def badge(interventions: list[Intervention], patch: Patch | None) -> None:
    left, right = st.columns([5, 1], vertical_alignment="center")
    with left:
        if interventions:
            st.badge("intervention on", icon="⚡", color="red")
            st.markdown(describe_interventions(interventions))
        if patch is not None:
            st.badge("weight patch on", icon="🩹", color="orange")
            st.markdown(f"{patch_label(patch)}, applied on *Transfer*")
        if not interventions and patch is None:
            st.badge("no intervention: the model runs unchanged", color="gray")
    right.button("Reset", key="iv_reset", on_click=guarded(state.clear_interventions), disabled=not interventions,
                 width="stretch")


def messages(history: list[dict], side: str, prompt: str) -> list[dict]:
    """One side's conversation so far plus the new user message."""
    out = []
    for turn in history:
        out += [{"role": "user", "content": turn["user"]}, {"role": "assistant", "content": turn[side]}]
    return out + [{"role": "user", "content": prompt}]


def exchange(user: str, replies: dict, active: str) -> dict:
    """Draw a user message and the two replies side by side; iterators are streamed. Returns the texts."""
    with st.chat_message("user"):
        st.markdown(user)
    out = {}
    for column, (side, title) in zip(st.columns(2), SIDES.items()):
        with column, st.chat_message("assistant"):
            st.caption(f"{title}: {active}" if side == "changed" else title)
            reply = replies[side]
            if isinstance(reply, str):  # a reply of an earlier turn
                st.markdown(reply)
                out[side] = reply
            else:
                with closing(reply) as chunks:  # ends the reply (and frees the model) even if the run stops
                    out[side] = st.write_stream(chunks)
    return out


def chat(shared: HostedModel, interventions: list[Intervention], patch: Patch | None, role: str) -> None:
    history = st.session_state.setdefault(f"chat_{role}", [])
    for turn in history:
        exchange(turn["user"], turn, turn["active"])
    prompt = st.chat_input("Message the model", key="chat_input")
    if prompt:
        sampling = Sampling(max_new_tokens=st.session_state["iv_max_new_tokens"])
        active = " · ".join(filter(None, [describe_interventions(interventions), patch and patch_label(patch)])) or "no intervention"
        replies = exchange(prompt, {
            "changed": shared.stream(messages(history, "changed", prompt), interventions, sampling, patch),
            "plain": shared.stream(messages(history, "plain", prompt), [], sampling)}, active)
        history.append({"user": prompt, "active": active, **replies})


def which_refuses() -> str | None:
    """Say which loaded model refuses harmful requests (measured); returns that role, or None if unknown."""
    refusals = refusal_estimates()
    if not refusals:
        if st.button("Which model refuses? (a quick check on 8 + 8 English prompts)", key="iv_check"):
            estimate_refusals()
            st.rerun()
        return None
    st.caption("Suppressing safety neurons only shows in a model that refuses: " + "; ".join(
        f"**{role}** ({md(state.loaded_keys()[role].spec)}) refuses {est.describe()}" for role, est in refusals.items()))
    return max(refusals, key=lambda role: refusals[role].harmful)


fn = current_or_stop()
header("Intervene & chat", f"Switch chosen neurons off (suppress) or scale them up (activate), e.g. the {fn.neurons} "
                           f"of {fn.title}, then chat: the intervened model answers on the left, the unchanged model "
                           "on the right.")
refuser = which_refuses() if fn.name == "refusal" else None  # the quick check measures refusal
roles = [r for r in state.ROLES if r in state.loaded_keys()] or list(state.ROLES)
role = st.radio("Chat with", roles, key=state.IV_MODEL, horizontal=True, **KEEP,
                index=roles.index(refuser) if refuser in roles else 0,
                captions=[state.loaded_keys()[r].spec if r in state.loaded_keys() else "" for r in roles])
shared = model_or_stop(role)
set_files(shared)
interventions = interventions_for(chosen_sets(shared))
state.set_interventions(role, interventions)  # shown in the sidebar, measured on Evaluate
patch = state.session_patch(role)
badge(interventions, patch)
left, right = st.columns([5, 1], vertical_alignment="bottom")
left.slider("max new tokens", 8, 512, 96, 8, key="iv_max_new_tokens", **KEEP)
if right.button("Clear chat", key="iv_clear", width="stretch"):
    st.session_state[f"chat_{role}"] = []
chat(shared, interventions, patch, role)
