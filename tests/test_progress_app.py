"""Presets, time estimates and stopped jobs in the app (AppTest, tiny-llama: only the plumbing matters)."""
from neuronlab.analysis.scan import run_scan
from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.metrics import mc_items
from neuronlab.presets import PRESETS
from tests.support.apptest import app, heatmap_figure, page, run
from webui import state
from webui.jobs import JobNote

QUICK, FULL = PRESETS["quick"], PRESETS["full"]


def scan_settings(at) -> tuple:
    return (at.multiselect(key="scan_langs_bundled").value, at.number_input(key="scan_per_label").value,
            at.selectbox(key="scan_method").value)


def test_the_preset_fills_the_scan_form_and_a_quick_scan_finishes():
    at = page(app("tiny-llama"), "safety_neurons")
    assert at.radio(key="scan_preset").value == "quick"
    assert scan_settings(at) == (list(QUICK.scan.langs), QUICK.scan.per_label, QUICK.scan.method)
    run(at.radio(key="scan_preset").set_value("full"))
    assert scan_settings(at) == (list(FULL.scan.langs), None, FULL.scan.method)
    run(at.radio(key="scan_preset").set_value("quick"))
    run(at.number_input(key="scan_per_label").set_value(4))  # still editable
    assert any(c.value.startswith("Takes ") and "on this machine" in c.value for c in at.caption)
    run(at.button(key="scan_run").click())
    assert at.session_state[state.SCAN].n_prompts == {lang: {"harmful": 4, "harmless": 4} for lang in QUICK.scan.langs}
    assert any(c.value.startswith("Finished in ") for c in at.caption)
    assert not at.warning


def test_quick_settings_on_the_evaluate_and_transfer_pages():
    at = page(app("tiny-llama"), "evaluate")
    size = QUICK.evaluation
    assert [at.number_input(key=k).value for k in ("ev_per_label", "ev_tokens", "ev_mc", "ev_seeds")] == \
        [size.per_label, size.max_new_tokens, size.mc_questions, size.seeds]
    run(at.radio(key="ev_preset").set_value("full"))
    assert at.number_input(key="ev_mc").value == len(mc_items()) and at.number_input(key="ev_seeds").value == 3
    page(at, "transfer")
    assert [at.number_input(key=k).value for k in ("tf_prompts", "tf_start", "tf_cap", "tf_eval_per_label")] == \
        [QUICK.curve.per_label, QUICK.curve.start, QUICK.curve.max_percent, QUICK.transfer.per_label]


def test_a_stopped_job_shows_what_finished(tiny):
    at = app("tiny-llama")
    at.session_state[state.SCAN] = run_scan(tiny, bundled_prompts(["en"]).head(2), ["en"], use_cache=False)
    at.session_state[state.JOB_NOTES] = {state.SCAN: JobNote(1, 2, "languages", 3.0)}
    page(at, "safety_neurons")
    assert any("Stopped after 1 of 2 languages" in w.value for w in at.warning)
    assert heatmap_figure(at)["data"]  # the finished language is drawn
