"""The sidebar's function picker in the app (AppTest, tiny-llama as the CLI test of user functions uses): refusal
stays the default and its pages unchanged; bias scans its stereotype vs anti-stereotype sentences; a user-defined
function (French vs English replies) runs scan → suppress → evaluate end to end."""
import re

from neuronlab import Intervention
from neuronlab.analysis.scan import DEFAULT_TOP_P, select_sets
from neuronlab.data.prompts import parse_prompts
from neuronlab.evaluation.functions import match_rates
from neuronlab.experiments import heldout_prompts
from tests.support.apptest import app, errors, figure, heatmap_figure, page, run, shown_texts
from tests.support.functions import LABELS, PATTERN, own_function, pick, reply_language_file
from webui import state


def test_refusal_is_the_default_and_its_pages_are_unchanged():
    at = page(app("tiny-llama"), "safety_neurons")
    assert at.selectbox(key=state.FUNCTION).value == "refusal"
    assert at.title[0].value == "Safety neurons" and "harmful" in at.caption[0].value
    assert at.radio(key="scan_source").value == "bundled"  # refusal's own prompt choice stays
    run(at.number_input(key="scan_per_label").set_value(4))
    run(at.button(key="scan_run").click())
    assert at.session_state[state.SCAN].labels == ("harmful", "harmless")
    assert heatmap_figure(at)["layout"]["title"]["text"].startswith("en: harmful − harmless")
    at = page(pick(at, "bias"), "overlap")  # another function: the refusal scan is not its scan
    assert any("No scan yet" in text for text in shown_texts(at))
    at = page(pick(at, "refusal"), "overlap")
    assert len(at.get("plotly_chart")) == 4 and "safety neurons" in at.caption[0].value


def test_bias_scans_its_stereotype_and_anti_stereotype_sentences():
    at = page(pick(app("tiny-llama"), "bias"), "safety_neurons")
    assert at.title[0].value == "Function neurons — bias: stereotype vs anti-stereotype"
    run(at.number_input(key="scan_per_label").set_value(4))
    run(at.button(key="scan_run").click())
    scan = at.session_state[state.SCAN]
    assert scan.labels == ("stereotype", "anti_stereotype")
    assert scan.n_prompts == {"en": {"stereotype": 4, "anti_stereotype": 4}}
    assert heatmap_figure(at)["layout"]["title"]["text"].startswith("en: stereotype − anti-stereotype")
    assert "importance anti_stereotype" in at.dataframe[-1].value.columns
    page(at, "intervene")
    assert {f"scan#{name}" for name in select_sets(scan, DEFAULT_TOP_P).sets()} <= set(
        at.multiselect(key=state.IV_SETS).options)


def test_picking_bias_offers_the_built_in_bias_pair_in_one_click():
    at = app("tiny-llama")
    assert not [b for b in at.button if b.key == "fn_bias_pair"]  # refusal: no bias hint
    at = pick(at, "bias")
    at = run(at.button(key="fn_bias_pair").click())
    assert at.selectbox(key=state.picker("target")).value == "demo-target"
    assert at.selectbox(key=state.picker("donor")).value == "bias-donor"
    assert not [b for b in at.button if b.key == "fn_bias_pair"]  # picked: the hint goes


def test_a_bad_own_function_gets_one_message_and_the_pages_wait_for_it():
    at = page(pick(app("tiny-llama"), "your own"), "safety_neurons")
    assert any("not complete yet" in text for text in shown_texts(at))
    at = own_function(at, pattern="(")
    assert [m for m in errors(at) if "is not a regular expression" in m]
    at = own_function(at, content=b'{"id": "1", "lang": "en", "label": "german", "text": "Hallo"}\n')
    assert any("reply-language.jsonl, line 1" in m and "unknown label 'german'" in m for m in errors(at))
    assert any("not complete yet" in text for text in shown_texts(at))


def test_a_user_defined_function_runs_scan_suppress_evaluate(tiny):
    at = page(own_function(app("tiny-llama")), "safety_neurons")
    assert at.title[0].value == "Function neurons — your own: french vs english"
    run(at.button(key="scan_run").click())
    scan = at.session_state[state.SCAN]
    assert scan.labels == LABELS and scan.n_prompts == {"en": {"french": 4, "english": 4}}  # the scan split

    for name in ("overlap", "neurons", "transfer", "intervene"):
        at = page(at, name)
        assert "french vs english" in " ".join(shown_texts(at)), name
    run(at.multiselect(key=state.IV_SETS).set_value(["scan#en"]))
    [suppressed] = at.session_state[state.INTERVENTIONS]["target"]
    assert suppressed.mode == "suppress" and suppressed.neurons == select_sets(scan, DEFAULT_TOP_P).ms["en"]

    at = page(at, "evaluate")
    assert "your own: french vs english" in at.caption[0].value
    run(at.number_input(key="evm_tokens").set_value(6))
    at = run(at.button(key="evm_run").click())
    results = at.session_state["own_evaluation"]["variants"]
    assert set(results) == {"plain", "intervened"}
    held = heldout_prompts(["en"], 20, parse_prompts(reply_language_file(), "jsonl", labels=LABELS))
    pattern = re.compile(PATTERN, re.IGNORECASE)
    for name, ivs in (("plain", []), ("intervened", [Intervention(suppressed.neurons, "suppress")])):
        expected = match_rates(tiny, held, ["en"], LABELS, pattern, ivs, max_new_tokens=6)
        for label in LABELS:
            assert results[name]["en"][label]["n"] == 2
            assert results[name]["en"][label]["hits"] == expected["en"][label]["hits"]
    bars = {t["name"]: t for t in figure(at)["data"]}
    assert set(bars) == {"plain", "intervened"} and list(bars["plain"]["x"]) == ["en french", "en english"]
    assert any("How to read this" in c.value and "match" in c.value for c in at.caption)
