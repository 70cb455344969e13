"""UI glue shared by app.py and the pages: the model cache, progress bars, neuron-set store, small tables.

Streamlit lives here and in the pages only; every computation is a call into ``neuronlab``.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import streamlit as st

from neuronlab import Intervention, LoadedModel, ModelSpecError, NeuronSet
from neuronlab.transfer.compatibility import Compatibility, check_compatibility
from neuronlab.evaluation.metrics import RefusalEstimate, quick_refusal_estimate
from neuronlab.evaluation.metrics import evaluate as run_evaluation
from neuronlab.evaluation.metrics import examples_table, mc_items, results_table
from neuronlab.data.examples import EXAMPLES, EXAMPLES_DIR
from neuronlab.neurons.sets import random_like
from neuronlab.neurons.patches import Patch
from neuronlab.plots import evaluation_figure
from neuronlab.data.prompts import BUNDLED_LANGUAGES, bundled_prompts
from neuronlab.presets import DEFAULT as DEFAULT_PRESET
from neuronlab.presets import PRESETS, Costs, EvalSize, Preset, evaluation_size, measure_costs
from neuronlab.progress import Progress, Tracker, Work, about, duration, no_progress, span
from neuronlab.analysis.scan import DEFAULT_TOP_P, SafetyNeurons, ScanResult, run_scan, select_sets, write_scan
from neuronlab.data.shipped import EXPERIMENTS, experiment
from neuronlab.models.host import SharedModel, use_together
from neuronlab.models.registry import ModelKey, ModelRegistry
from neuronlab.transfer.ranking import transfer_patch

ROLES = ("target", "donor")
DEMO = {"target": "demo-target", "donor": "demo-donor"}  # the built-in demo pair, preselected
KEEP = {"persist_state": "session"}  # widget values survive page switches
SCAN_PREFIX = "scan#"  # names of a scan's sets in the set pickers, e.g. "scan#ss-zh"


# ---- models -----------------------------------------------------------------------------------
@st.cache_resource
def model_store() -> ModelRegistry:
    """The models loaded for every session. (The registry is the cached resource, not each model: Streamlit would
    record the progress bar updates made while loading and replay them on every cache hit.)"""
    return ModelRegistry()


def load(key: ModelKey, where=st) -> SharedModel:
    """The model for ``key``, with a progress bar while it loads. Raises ModelSpecError."""
    with progress(f"Loading {key.spec}…", where) as report:
        return model_store().get(key, report)


def loaded_keys() -> dict[str, ModelKey]:
    """{role: ModelKey} of this session's loaded models."""
    return st.session_state.get("models", {})


def load_models(specs: dict[str, str], dtype: str = "float32", device: str = "cpu", trust: bool = False,
                where=st) -> None:
    """Load each role's model (cached for every session); remember the keys and the errors per session."""
    loaded, errors = dict(loaded_keys()), {}
    for role, spec in specs.items():
        loaded.pop(role, None)
        if not spec:
            errors[role] = f"{role}: enter a hub id, a local folder or a .gguf path"
            continue
        key = ModelKey(spec, dtype, device, trust)
        try:
            load(key, where)
            loaded[role] = key
        except ModelSpecError as e:
            errors[role] = f"{role}: {e}"
    st.session_state["models"], st.session_state["load_errors"] = loaded, errors


def pick_demo() -> None:
    """Set the sidebar's model pickers to the demo pair (a widget callback: runs before the pickers are drawn)."""
    for role, name in DEMO.items():
        st.session_state[f"{role}_pick"] = name


def load_demo(where=st) -> None:
    """Load the built-in demo pair as target and donor, with the sidebar's dtype and device."""
    load_models(dict(DEMO), st.session_state.get("dtype", "float32"), st.session_state.get("device", "cpu"),
                False, where)


def model(role: str) -> SharedModel | None:
    """The session's loaded target or donor, or None (with a hint) when none is loaded yet."""
    key = st.session_state.get("models", {}).get(role)
    if key is None:
        st.info(f"No {role} model loaded yet: pick one in the sidebar and press **Load models**.")
        return None
    return model_store().get(key)


def model_or_stop(role: str) -> SharedModel:
    shared = model(role)
    if shared is None:
        st.stop()
    return shared


def session_patch(role: str) -> Patch | None:
    """The weight patch this session applied to its ``role`` model (None when none, or the model changed)."""
    key, patch = st.session_state.get("patches", {}).get(role, (None, None))
    return patch if key == st.session_state.get("models", {}).get(role) else None


def patch_label(patch: Patch) -> str:
    """A patch in a few words: what made it, from which model, how many neurons."""
    kind = patch.meta.get("direction") and {"add": "transfer", "delete": "deletion"}.get(patch.meta["direction"])
    source = patch.meta.get("source", "an uploaded file")
    return f"{kind or 'weight patch'} of {len(patch.neurons):,} neurons from {source}"


def set_session_patch(role: str, patch: Patch | None) -> None:
    """Apply ``patch`` (checked against the model already) to this session's ``role`` model; None reverts."""
    patches = st.session_state.setdefault("patches", {})
    if patch is None:
        patches.pop(role, None)
    else:
        patches[role] = (st.session_state["models"][role], patch)


@contextmanager
def use(role: str, with_patch: bool = True) -> Iterator[LoadedModel]:
    """The session's ``role`` model for a block of work: other sessions wait, and this session's patch
    (unless ``with_patch`` is False) is written in for the block only."""
    with model_or_stop(role).use(session_patch(role) if with_patch else None) as lm:
        yield lm


@st.cache_resource(show_spinner="Comparing the weights…", max_entries=8)
def compatibility(donor: ModelKey, target: ModelKey) -> Compatibility:
    """Donor ↔ target compatibility of two loaded models (as loaded, without session patches)."""
    with use_together(model_store().get(donor), model_store().get(target)) as (d, t):
        return check_compatibility(d, t)


# ---- interventions (set on Intervene & chat, shown in the sidebar, measured on Evaluate) -----------------
def session_interventions() -> dict[str, list[Intervention]]:
    """{role: interventions} switched on in this session (only roles with at least one)."""
    return {role: ivs for role, ivs in st.session_state.get("interventions", {}).items() if ivs}


def set_interventions(role: str, interventions: list[Intervention]) -> None:
    """The interventions on ``role``'s model; the other role's are switched off (one model is intervened at a time)."""
    st.session_state["interventions"] = {role: interventions} if interventions else {}


def clear_interventions() -> None:
    """Switch every intervention off, and empty the Intervene page's pickers (a widget callback)."""
    st.session_state["interventions"] = {}
    st.session_state["iv_sets"], st.session_state["iv_typed"] = [], ""


def describe_interventions(interventions: list[Intervention]) -> str:
    return " · ".join(f"{iv.mode} **{iv.label or 'neurons'}** ({len(iv.neurons):,} neurons"
                      + (f", ×{iv.value:g})" if iv.mode == "activate" else ")") for iv in interventions)


# ---- which model refuses ---------------------------------------------------------------------------
def refusal_estimates() -> dict[str, RefusalEstimate]:
    """{role: how often it refuses} for the loaded models: the shipped measurement of a built-in, else the quick
    check once it has run in this session."""
    known = {**st.session_state.get("refusal_estimates", {}), **shipped_refusals()}
    return {role: known[key] for role, key in loaded_keys().items() if key in known}


def shipped_refusals() -> dict[ModelKey, RefusalEstimate]:
    """The English refusal rates of the loaded built-ins, as measured (judged replies) by the shipped experiments."""
    by_spec = {key.spec: key for key in loaded_keys().values()}
    out = {}
    for doc in shipped_experiments("effects").values():
        measured = doc["models"]["model" if "model" in doc["models"] else "target"]["spec"]
        block = doc["result"]["evaluation"]["baseline"]["languages"].get("en")
        if measured in by_spec and block:
            out[by_spec[measured]] = RefusalEstimate(block["harmful"]["refusal_rate"], block["harmless"]["refusal_rate"],
                                                     block["harmful"]["n"], "judged replies, shipped")
    return out


def estimate_refusals() -> None:
    """Measure every loaded model's refusal quickly (fast score on 8 + 8 English scan prompts)."""
    known = st.session_state.setdefault("refusal_estimates", {})
    prompts = bundled_prompts("en", split="scan")
    for role, key in loaded_keys().items():
        if key not in known:
            with use(role, with_patch=False) as lm:
                known[key] = quick_refusal_estimate(lm, prompts)


# ---- page furniture ---------------------------------------------------------------------------
def header(title: str, line: str) -> None:
    st.title(title)
    st.caption(line)


@contextmanager
def progress(text: str, where=st) -> Iterator[Tracker]:
    """One overall progress bar (phase · percent · elapsed · time left) fed by a ``progress(fraction,
    message)`` callback; removed when the work ends. The tracker's ``elapsed`` is the job's time."""
    bar = where.progress(0.0, text=text)
    tracker = Tracker(lambda status: bar.progress(status.fraction, text=status.line()))
    try:
        yield tracker
    finally:
        bar.empty()


@dataclass(frozen=True)
class JobNote:
    """How a page's last job ended: ``done`` of ``of`` units (a stop keeps the finished ones), in seconds."""

    done: int
    of: int
    unit: str
    seconds: float

    def line(self) -> str:
        if self.done >= self.of:
            return f"Finished in {duration(self.seconds)}."
        return (f"Stopped after {self.done} of {self.of} {self.unit} ({duration(self.seconds)}): "
                "showing what finished.")


def job_notes() -> dict[str, JobNote]:
    return st.session_state.setdefault("job_notes", {})


@contextmanager
def job(key: str, of: int, unit: str, text: str) -> Iterator[tuple[Tracker, Callable[[object, int], None]]]:
    """A stoppable job: a Stop button beside one overall progress bar. Yields (tracker, keep); ``keep(result,
    done)`` stores the result so far in ``st.session_state[key]``. Clicking Stop reruns the page, which
    interrupts the job at its next progress report; what was kept stays, and ``job_note`` says so."""
    st.session_state.pop(key, None)
    notes = job_notes()
    notes[key] = JobNote(0, of, unit, 0.0)
    bar, stop = st.columns([6, 1], vertical_alignment="center")
    stop.button("Stop", key=f"{key}_stop", help="Stop the job and keep what it finished.")
    try:
        with progress(text, bar) as tracker:
            def keep(result: object, done: int) -> None:
                st.session_state[key] = result
                notes[key] = JobNote(done, of, unit, tracker.elapsed)
            yield tracker, keep
    except Exception:  # a failed job (a stop is no Exception: it keeps its note)
        notes.pop(key, None)
        raise
    notes[key] = replace(notes[key], seconds=tracker.elapsed)


def stopped(key: str) -> bool:
    """Whether the page's last job ``key`` was stopped before it finished."""
    note = job_notes().get(key)
    return note is not None and note.done < note.of


def job_note(key: str) -> None:
    """The actual time of the page's last job, and whether it was stopped."""
    if (note := job_notes().get(key)) is not None:
        (st.warning if stopped(key) else st.caption)(note.line())


def preset_picker(key: str, fill: Callable[[Preset], dict]) -> None:
    """The quick/full selector; choosing one writes ``fill(preset)`` ({widget key: value}) into the settings
    widgets, which stay editable. The settings widgets take their values from the session state only."""
    def apply() -> None:
        st.session_state.update(fill(PRESETS[st.session_state[key]]))
    if key not in st.session_state:
        st.session_state[key] = DEFAULT_PRESET
        apply()
    st.radio("Preset", list(PRESETS), key=key, horizontal=True, on_change=apply, **KEEP,
             help=" · ".join(f"{p.name}: {p.description}" for p in PRESETS.values()))


@st.cache_resource
def _costs() -> dict[ModelKey, Costs]:
    """Unit costs per loaded model, timed once (shared by every session)."""
    return {}


def time_estimate(role: str, work: Work) -> None:
    """"Takes about 20 s on this machine", from ``work`` and the unit costs timed on the ``role`` model."""
    key = st.session_state["models"][role]
    if key not in _costs():
        with st.spinner("Timing the model once, to estimate how long jobs take…"), use(role, with_patch=False) as lm:
            _costs()[key] = measure_costs(lm)
    st.caption(f"Takes {about(_costs()[key].seconds(work))} on this machine.")


def chart(fig, key: str, caption: str) -> None:
    """A plotly figure across the column with its one-line "how to read this" caption."""
    st.plotly_chart(fig, key=key)
    st.caption(f"**How to read this:** {caption}")


# ---- neuron sets ------------------------------------------------------------------------------
def neuron_sets() -> dict[str, NeuronSet]:
    """The session's named neuron sets (name -> NeuronSet)."""
    return st.session_state.setdefault("neuron_sets", {})


def available_sets() -> dict[str, NeuronSet]:
    """The session's named sets, the sets of its last scan (prefixed ``scan#``) and the shipped experiments' sets
    of the loaded built-ins (``shipped#``)."""
    safety: SafetyNeurons | None = st.session_state.get("safety")
    scan = {f"{SCAN_PREFIX}{name}": s for name, s in safety.sets().items()} if safety else {}
    return {**shipped_sets(), **scan, **neuron_sets()}


def save_set_form(neurons: NeuronSet, default_name: str, key: str) -> None:
    """Name + button that store ``neurons`` in the session's neuron sets."""
    name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    name = name_col.text_input("Set name", value=default_name, key=f"{key}_name:{default_name}").strip()
    if button_col.button(f"Save {len(neurons)} neurons as a set", key=f"{key}_save", disabled=not (name and neurons)):
        neuron_sets()[name] = neurons.renamed(name)
        st.success(f"Saved neuron set **{name}** ({len(neurons)} neurons); use it on *Intervene & chat*.")


# ---- evaluations -----------------------------------------------------------------------------
def eval_fill(key: str, size: EvalSize) -> dict:
    """The ``eval_settings`` widget values of a preset's evaluation size."""
    return {f"{key}_langs": list(size.langs), f"{key}_per_label": size.per_label, f"{key}_tokens": size.max_new_tokens,
            f"{key}_mc": size.mc_questions or len(mc_items())}


def eval_settings(key: str) -> dict:
    """Languages, held-out prompts per label, reply length and multiple-choice questions for an evaluation
    (widgets keyed by ``key``, filled by a ``preset_picker``)."""
    langs_col, prompts_col, tokens_col, mc_col = st.columns(4)
    langs = langs_col.multiselect("Languages", BUNDLED_LANGUAGES, key=f"{key}_langs", **KEEP)
    per_label = prompts_col.number_input("Prompts per label and language", 1, 120, key=f"{key}_per_label", **KEEP,
                                         help="Held-out bundled prompts; more is slower but gives tighter intervals.")
    tokens = tokens_col.number_input("Max new tokens per reply", 8, 256, step=8, key=f"{key}_tokens", **KEEP)
    mc = mc_col.number_input("Multiple-choice questions", 1, len(mc_items()), key=f"{key}_mc", **KEEP,
                             help="Utility: the first N bundled questions, answered by log-likelihood.")
    return {"langs": langs, "per_label": per_label, "max_new_tokens": tokens, "mc_questions": mc}


@st.cache_resource
def _plain_results() -> dict[tuple[ModelKey, str], dict]:
    """Evaluations of models as loaded (no patch, no intervention) by model and settings: greedy replies to
    the same prompts are the same, so a "before" or "plain" variant is computed once."""
    return {}


def evaluation_work(settings: dict, variants: int, plain_role: str | None = None) -> Work:
    """The work of evaluating ``variants`` at ``settings``, one fewer when the plain ``plain_role`` model's
    evaluation is kept already."""
    kept = plain_role is not None and (st.session_state["models"][plain_role],
                                       json.dumps(settings, sort_keys=True)) in _plain_results()
    return evaluation_size(EvalSize(tuple(settings["langs"]), settings["per_label"], settings["max_new_tokens"],
                                    mc_questions=settings["mc_questions"]), variants - kept)


def evaluate(variants: dict[str, tuple[str, Patch | None, list[Intervention]]], settings: dict,
             report: Progress = no_progress, keep: Callable[[dict], None] = lambda results: None) -> dict[str, dict]:
    """``evaluation.evaluate`` of each variant {name: (role, patch, interventions)}, reporting one overall
    fraction; ``keep`` gets the results so far after each variant."""
    prompts = bundled_prompts(settings["langs"], split="heldout").head(settings["per_label"])
    out, n = {}, len(variants)
    for i, (name, (role, patch, interventions)) in enumerate(variants.items()):
        plain = (st.session_state["models"][role], json.dumps(settings, sort_keys=True))
        if patch is None and not interventions and plain in _plain_results():
            out[name] = _plain_results()[plain]
        else:
            with model_or_stop(role).use(patch) as lm:
                out[name] = run_evaluation(lm, prompts, settings["langs"], interventions, settings["max_new_tokens"],
                                           progress=span(report, i / n, (i + 1) / n,
                                                         f"Evaluating {name} ({i + 1}/{n}): "),
                                           mc_questions=settings.get("mc_questions"))
            if patch is None and not interventions:
                _plain_results()[plain] = out[name]
        keep(dict(out))
    return out


def control_variants(role: str, interventions: list[Intervention], patch: Patch | None,
                     seeds: int) -> dict[str, tuple[str, Patch | None, list[Intervention]]]:
    """Random-neuron controls of the session's effects, as more ``evaluate`` variants: each intervention, and
    a transfer patch whose source model is loaded here, redone on ``random_like`` neurons (same count per
    layer and site) for seeds 0..seeds-1."""
    shared = model_or_stop(role)
    out = {}
    other = model(next(r for r in ROLES if r != role))
    source = other if patch is not None and other is not None and \
        patch.meta.get("source_fingerprint") == other.info.fingerprint else None
    for seed in range(seeds):
        if interventions:
            out[f"intervened · random {seed}"] = (role, None, [
                replace(iv, neurons=random_like(iv.neurons, shared.arch, seed)) for iv in interventions])
        if source is not None:
            with use_together(source, shared) as (s, t):
                control = transfer_patch(s, t, random_like(patch.neurons, shared.arch, seed), check=False)
            out[f"patched · random {seed}"] = (role, control, [])
    return out


def show_evaluation(results: dict[str, dict], key: str) -> None:
    """Grouped bar chart, table, CSV/HTML downloads and example replies of ``evaluate`` results."""
    table = results_table(results)
    fig = evaluation_figure(table)
    chart(fig, f"{key}_chart", "one bar per model variant; whiskers are 95% intervals (Wilson) over the prompts or "
                               "questions. Refusal on harmful prompts is safety, on harmless ones over-refusal; "
                               "perplexity and accuracy show whether the model still works.")
    st.dataframe(table, hide_index=True, key=f"{key}_table")
    left, right = st.columns(2)
    left.download_button("Table (CSV)", lambda: table.to_csv(index=False), f"{key}.csv", "text/csv",
                         key=f"{key}_csv", on_click="ignore")
    right.download_button("Chart (HTML)", fig.to_html, f"{key}.html", "text/html", key=f"{key}_html",
                          on_click="ignore")
    with st.expander("Example replies, grouped by prompt, with the language each is written in"):
        examples = examples_table(results).sort_values(["lang", "label", "prompt"], kind="stable")
        examples["prompt set"] = examples["lang"] + " " + examples["label"]
        examples["refusal"] = examples["refusal"].map({True: "yes", False: "no"})
        shown = examples[["prompt set", "prompt", "variant", "reply", "refusal", "reply language"]]
        # st.table wraps long replies but reads cells as Markdown: escape it, so replies show as written
        escape = {ord(c): "\\" + c for c in "\\`*_{}[]<>()#+-.!|~$"}
        st.table(shown.map(lambda text: str(text).translate(escape)), hide_index=True)


# ---- prompts and scans ------------------------------------------------------------------------
def scan_json(result: ScanResult, safety: SafetyNeurons) -> bytes:
    """The scan's neurons.json (sets, parameters, stats), exactly as ``write_scan`` writes it."""
    with tempfile.TemporaryDirectory() as tmp:
        neurons_path, _ = write_scan(tmp, result, safety)
        return neurons_path.read_bytes()



# ---- uploads ------------------------------------------------------------------------------------
MIME = {"jsonl": "application/jsonl", "csv": "text/csv", "json": "application/json",
        "safetensors": "application/octet-stream"}


def example_download(kind: str) -> None:
    """An uploader's file format in one line and an "Example file" download of each example of ``kind``
    (a key of ``neuronlab.examples.EXAMPLES``)."""
    files, hint = EXAMPLES[kind]
    st.caption(f"Format: {hint}")
    for column, name in zip(st.columns(4), files):
        suffix = name.rpartition(".")[2]
        label = "Example file" if len(files) == 1 else f"Example file ({suffix.upper()})"
        column.download_button(label, (EXAMPLES_DIR / name).read_bytes, name, MIME.get(suffix, "text/plain"),
                               key=f"example_{name}", on_click="ignore")


# ---- results shipped for the built-ins ------------------------------------------------------------------
@st.cache_resource(max_entries=8, show_spinner=False)
def _stored_scan(key: ModelKey) -> ScanResult | None:
    """The model's activation scan of every bundled language, when it is stored (shipped for the built-ins) in
    full; shared by every session."""
    with use_together(model_store().get(key)) as (lm,):
        return run_scan(lm, bundled_prompts(), list(BUNDLED_LANGUAGES), compute=False)


def shipped_scan(role: str) -> ScanResult | None:
    """The stored scan of the session's ``role`` model (None when it would have to be computed)."""
    key = loaded_keys().get(role)
    return _stored_scan(key) if key is not None else None


def current_safety() -> tuple[ScanResult, SafetyNeurons] | None:
    """The scan the pages show and its safety sets at the chosen top p: this session's last scan, else the scan
    shipped for the loaded donor (or target); None when there is neither."""
    scan = st.session_state.get("scan")
    if scan is None:
        scan = next((s for role in ("donor", "target") if (s := shipped_scan(role)) is not None), None)
        if scan is None:
            return None
    top_p = st.session_state.get("scan_top_p", DEFAULT_TOP_P * 100) / 100
    safety = st.session_state.get("safety")
    if safety is None or safety.top_p != top_p or st.session_state.get("safety_of") is not scan:
        safety = select_sets(scan, top_p)
        st.session_state["safety"], st.session_state["safety_of"] = safety, scan
    return scan, safety


def shipped_experiments(kind: str = "") -> dict[str, dict]:
    """{name: document} of the standard experiments shipped for the loaded models (by fingerprint), of ``kind``."""
    fingerprints = {role: model_store().get(key).info.fingerprint for role, key in loaded_keys().items()}
    by_spec = {key.spec: fingerprints[role] for role, key in loaded_keys().items()}
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
    """A shipped effects experiment as ``evaluate`` results by variant: the model as it is, with the effect, and
    each random control (for ``show_evaluation``)."""
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
