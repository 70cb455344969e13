"""The Streamlit app, driven by streamlit.testing.v1.AppTest: every page renders, and each page's main
interaction works (tiny-llama where shapes are all that matter, demo-target where behaviour matters)."""
import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from neuronlab import Intervention, NeuronSet, load_model
from neuronlab.analysis.scan import DEFAULT_TOP_P, run_scan, select_sets
from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.judge import is_refusal
from neuronlab.neurons.patches import Patch
from tests.support.apptest import app, figure, heatmap_figure, page, quick_eval, run
from tests.support.builders import scrambled_patch
from webui import state

PAGES = ["start", "tour", "models", "safety_neurons", "overlap", "neurons", "intervene", "transfer", "evaluate"]


def values(v) -> np.ndarray:
    """A figure's data array: plotly's typed array ({dtype, bdata[, shape]}) decoded, or a plain list."""
    if not isinstance(v, dict):
        return np.asarray(v)
    out = np.frombuffer(base64.b64decode(v["bdata"]), v["dtype"])
    return out.reshape([int(n) for n in v["shape"].split(",")]) if "shape" in v else out


def heatmap_z(fig: dict) -> np.ndarray:
    return values(fig["data"][0]["z"])


def chat(at: AppTest, message: str) -> dict:
    run(at.slider(key="iv_max_new_tokens").set_value(8))
    run(at.chat_input(key="chat_input").set_value(message))
    return at.session_state["chat_target"][-1]


@pytest.mark.real_model  # loads demo-target by name, not through a fixture
def test_every_page_renders_on_the_demo_model():
    at = app("demo-target")
    for name in PAGES:
        page(at, name)
        assert at.title[0].value and at.caption[0].value
    page(at, "models")
    assert "Compatible" in at.success[0].value  # demo-target against itself


def test_bad_spec_shows_an_error_and_the_app_stays_up():
    at = app()
    at.selectbox(key="target_pick").select("other…")
    run(at)
    at.text_input(key="target_spec").input("/no/such/model-folder")
    run(at.button(key="load_models").click())
    assert any("no such folder" in e.value for e in at.error)
    assert "target" not in at.session_state[state.MODELS]
    page(at, "models")
    assert any("No target model loaded" in i.value for i in at.info)


def test_scan_draws_a_heatmap_and_feeds_overlap_and_neuron_sets():
    at = page(app("tiny-llama"), "safety_neurons")
    run(at.number_input(key="scan_per_label").set_value(8))
    run(at.button(key="scan_run").click())
    z = heatmap_z(heatmap_figure(at))
    assert z.shape == (4, 128) and np.isfinite(z).any() and np.abs(z).max() > 0  # tiny-llama: 4 layers × 128
    assert at.session_state[state.SCAN].n_prompts == {"en": {"harmful": 8, "harmless": 8},
                                                      "zh": {"harmful": 8, "harmless": 8}}
    assert {"neurons.json", "Scores table (CSV)", "Heatmap (HTML)"} <= {b.label for b in at.get("download_button")}

    page(at, "overlap")
    assert len(at.get("plotly_chart")) == 4  # Venn, per-layer Jaccard, Jaccard matrix, SS per layer
    run(at.selectbox(key="overlap_region").select("or-en-zh"))
    run(at.button(key="overlap_save_save").click())
    saved = at.session_state[state.NEURON_SETS]["or-en-zh"]
    safety = select_sets(at.session_state[state.SCAN], DEFAULT_TOP_P)
    assert saved == safety.ms["en"] | safety.ms["zh"]


def test_the_safety_sets_follow_the_stored_scan_and_top_p_on_every_page(tiny):
    """The safety sets are computed from the session's scan and top p whenever a page asks, not left behind by
    drawing Safety neurons: with that page never drawn, the set pickers list the scan's sets and Overlap shows them."""
    at = app("tiny-llama")
    scan = run_scan(tiny, bundled_prompts(["en", "zh"]).head(4), ["en", "zh"], use_cache=False)
    at.session_state[state.SCAN], at.session_state[state.SCAN_TOP_P] = scan, 5.0
    expected = select_sets(scan, 0.05)
    page(at, "intervene")
    assert {f"scan#{name}" for name in expected.sets()} <= set(at.multiselect(key=state.IV_SETS).options)
    page(at, "overlap")
    assert len(at.get("plotly_chart")) == 4
    run(at.selectbox(key="overlap_region").select("or-en-zh"))
    run(at.button(key="overlap_save_save").click())
    assert at.session_state[state.NEURON_SETS]["or-en-zh"] == expected.ms["en"] | expected.ms["zh"]


def test_a_bad_prompt_file_shows_its_problem():
    at = page(app("tiny-llama"), "safety_neurons")
    run(at.radio(key="scan_source").set_value("upload"))
    bad = b'{"id": "1", "lang": "en", "label": "harmful", "text": "x"}\n{"id": "2", "lang": "en", "label": "rude"}\n'
    run(at.file_uploader(key="scan_upload").set_value(("bad.jsonl", bad, "application/json")))
    assert [e.value.count("bad.jsonl") for e in at.error] == [1]
    assert any("bad.jsonl, line 2" in e.value for e in at.error)
    assert {"Example file (JSONL)", "Example file (CSV)"} <= {b.label for b in at.get("download_button")}


def test_uploaded_neuron_sets_are_checked_against_the_model():
    at = page(app("tiny-llama"), "intervene")
    good = json.dumps({"sets": {"mine": {"neurons": {"mlp": {"0": [1, 2]}}}}}).encode()
    run(at.file_uploader(key="iv_upload").set_value(("mine.json", good, "application/json")))
    assert "mine" in at.multiselect(key="iv_sets").options
    bad = json.dumps({"neurons": {"mlp": {"9": [1]}}}).encode()  # tiny-llama has 4 layers
    run(at.file_uploader(key="iv_upload").set_value(("bad.json", bad, "application/json")))
    assert any("layer out of range" in e.value for e in at.error)
    assert [e.value.count("bad.json") for e in at.error] == [1]
    assert "Example file" in {b.label for b in at.get("download_button")}


@pytest.mark.real_model  # loads demo-target by name, not through a fixture
def test_intervention_changes_the_reply_and_sessions_stay_apart():
    patched_session = page(app("demo-target"), "intervene")
    run(patched_session.text_input(key="iv_typed").input("0-1 mlp *"))
    assert any("intervention on" in m.value for m in patched_session.markdown)
    plain_session = page(app("demo-target"), "intervene")

    on = chat(patched_session, "What is the capital of France?")
    off = chat(plain_session, "What is the capital of France?")
    assert on["changed"] != on["plain"]  # MLPs of layers 0-1 switched off
    assert off["changed"] == off["plain"] == on["plain"]  # the other session's toggles never reach this one
    assert off["active"] == "no intervention" and "typed neurons" in on["active"]

    run(patched_session.button(key="iv_reset").click())
    assert patched_session.text_input(key="iv_typed").value == ""


def test_transfer_makes_a_patch_to_download_measure_and_apply():
    at = page(app("tiny-llama"), "transfer")
    run(at.selectbox(key="tf_ranking").select("random"))
    run(at.number_input(key="tf_count").set_value(20))
    quick_eval(at, "tf_eval")
    run(at.button(key="tf_run").click())
    patch = at.session_state["transfer"]["patch"]
    assert len(patch.neurons) == 20 and patch.meta["direction"] == "add"
    assert Patch.from_bytes(patch.to_bytes()).neurons == patch.neurons  # the download reads back
    assert {"Patch (safetensors)", "Table (CSV)", "Chart (HTML)"} <= {b.label for b in at.get("download_button")}
    assert values(figure(at, 0)["data"][0]["y"]).sum() == 20  # neurons moved per layer
    assert list(dict.fromkeys(t["name"] for t in figure(at, 1)["data"])) == ["before", "after"]
    run(at.button(key="tf_apply").click())
    assert at.session_state[state.PATCHES]["target"][1] is patch
    run(at.button(key="tf_revert").click())
    assert "target" not in at.session_state[state.PATCHES]


def test_transfer_curve_is_drawn_with_its_random_baseline():
    at = page(app("tiny-llama"), "transfer")
    run(at.selectbox(key="tf_ranking").select("random"))
    run(at.number_input(key="tf_start").set_value(8))
    run(at.number_input(key="tf_cap").set_value(5.0))  # 5% of 512 MLP neurons: steps 8, 16, 26
    run(at.button(key="tf_search").click())
    frame = at.session_state["tf_curve"].to_frame()
    assert list(frame["k"]) == [0, 8, 16, 26]
    names = {t["name"] for t in figure(at, 0)["data"]}
    assert any("random" in n for n in names) and any("perplexity" in n for n in names)
    assert any("No set up to the cap" in w.value for w in at.warning)  # a random tiny model never refuses
    assert {"Curve (CSV)", "Curve (HTML)"} <= {b.label for b in at.get("download_button")}


@pytest.mark.real_model  # loads demo-target by name, not through a fixture
def test_a_wrong_patch_upload_is_refused_with_a_message():
    at = page(app("tiny-llama"), "transfer")
    assert "Example file" in {b.label for b in at.get("download_button")}
    for name, content, problem in [("junk.safetensors", b"junk", "not a NeuronLab patch (safetensors) file"),
                                   ("other.safetensors", scrambled_patch(load_model("demo-target"),
                                                                         NeuronSet([(0, "mlp", 1)])).to_bytes(),
                                    "made for a model with fingerprint")]:
        run(at.file_uploader(key="tf_upload").set_value((name, content, "application/octet-stream")))
        assert any(problem in e.value for e in at.error), [e.value for e in at.error]
        assert [e.value.count(name) for e in at.error] == [1]


def test_one_sessions_patch_is_never_seen_by_another():
    tiny = load_model("tiny-llama")
    patch = scrambled_patch(tiny, NeuronSet((layer, "mlp", i) for layer in range(4) for i in range(128)))
    patched_session = page(app("tiny-llama"), "transfer")
    run(patched_session.file_uploader(key="tf_upload").set_value(("p.safetensors", patch.to_bytes(), "x")))
    run(patched_session.button(key="tf_up_apply").click())
    assert any("carries a weight patch" in m.value for m in patched_session.success)
    plain_session = page(app("tiny-llama"), "intervene")
    page(patched_session, "intervene")
    assert any("weight patch on" in m.value for m in patched_session.markdown)

    on = chat(patched_session, "hello")
    off = chat(plain_session, "hello")
    assert on["changed"] != on["plain"]  # the patch changes this session's model
    assert off["changed"] == off["plain"] == on["plain"]  # and never the other session's
    assert "weight patch" in on["active"] and off["active"] == "no intervention"
    page(plain_session, "evaluate")
    assert at_options(plain_session, "ev_variants_target") == ["plain"]
    page(patched_session, "evaluate")
    assert at_options(patched_session, "ev_variants_target") == ["plain", "patched"]


def at_options(at: AppTest, key: str) -> list[str]:
    return list(at.multiselect(key=key).options)


def test_evaluate_draws_the_chart_with_random_controls():
    at = app("tiny-llama")
    suppressed = Intervention(NeuronSet((1, "mlp", i) for i in range(8)), "suppress")
    at.session_state[state.INTERVENTIONS] = {"target": [suppressed]}
    page(at, "evaluate")
    quick_eval(at, "ev")
    at.number_input(key="ev_seeds").set_value(2)
    run(at.button(key="ev_run").click())
    fig = figure(at)
    refusal = [t for t in fig["data"] if t.get("xaxis", "x") == "x"]
    assert [t["name"] for t in refusal] == ["plain", "intervened", "intervened · control seed 0", "intervened · control seed 1"]
    assert list(refusal[0]["x"]) == ["en harmful", "en harmless"]
    assert {"Table (CSV)", "Chart (HTML)"} <= {b.label for b in at.get("download_button")}


@pytest.mark.real_model  # the Tour loads demo-target and demo-donor itself
def test_tour_runs_its_steps_from_a_cold_session():
    """The Tour loads what it needs, suppresses demo-donor's own safety neurons (a refusal becomes an answer) and
    copies the donor's neurons into demo-target (an answer becomes a refusal)."""
    at = page(app(), "tour")
    for step in range(1, 6):
        run(at.button(key=f"tour_step_{step}").click())
    assert at.metric[0].value == "30"  # SmolLM2 layers
    assert heatmap_z(figure(at, 0)).shape[0] == 30
    assert list(figure(at, 1)["layout"]["meta"]["sizes"]) == ["en", "zh", "es"]  # the Venn
    tour = at.session_state["tour"]
    plain, off = tour["replies"]["replies"].values()
    assert is_refusal(plain, "en") and not is_refusal(off, "en")
    assert tour["replies"]["rates"]["after"] < tour["replies"]["rates"]["before"] - 0.3  # measured, held out
    plain, moved = tour["transfer"]["replies"].values()
    assert not is_refusal(plain, "en") and is_refusal(moved, "en")


def sidebar_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.sidebar.markdown)


def test_the_sidebar_shows_the_patch_and_the_interventions_and_clears_each():
    at = page(app("tiny-llama"), "transfer")
    run(at.selectbox(key="tf_ranking").select("random"))
    run(at.number_input(key="tf_count").set_value(20))
    run(at.toggle(key="tf_measure").set_value(False))
    run(at.button(key="tf_run").click())
    assert "patched" not in sidebar_text(at)
    run(at.button(key="tf_apply").click())
    assert "target patched**: transfer of 20 neurons from tiny-llama" in sidebar_text(at)
    run(at.sidebar.button(key="clear_patch_target").click())
    assert "patched" not in sidebar_text(at) and "target" not in at.session_state[state.PATCHES]

    page(at, "intervene")
    run(at.text_input(key="iv_typed").input("0 mlp 1-3"))
    assert "target intervened**: suppress **typed neurons** (3 neurons)" in sidebar_text(at)
    page(at, "models")  # the state shows on every page, and clears from any
    assert "intervened" in sidebar_text(at)
    run(at.sidebar.button(key="clear_iv_target").click())
    assert "intervened" not in sidebar_text(at) and at.session_state[state.IV_TYPED] == ""
    page(at, "intervene")
    assert at.text_input(key="iv_typed").value == ""
