"""The Transfer page follows the function picked in the sidebar (AppTest): tiny-llama as the target and a sibling
with perturbed MLP neurons, loaded from its folder, as the donor. Bias measures the stereotype and LM scores on
held-out bias items before and after and draws its curve; your own function measures its match rates."""
import re

import pytest
from streamlit.testing.v1 import AppTest

from neuronlab.data.bias import bundled_bias
from neuronlab.data.prompts import parse_prompts
from neuronlab.evaluation.bias import bias_scores
from neuronlab.evaluation.functions import match_rates
from neuronlab.experiments import heldout_prompts
from neuronlab.neurons.patches import Patch, patched
from neuronlab.transfer.ranking import contrast_scores, transfer_patch
from tests.support.apptest import app, figure, page, pair, run, shown_texts
from tests.support.builders import saved_sibling
from tests.support.functions import LABELS, PATTERN, own_function, pick, reply_language_file
from webui import state


@pytest.fixture(scope="module")
def sibling(tiny, tmp_path_factory):
    """(tiny-llama with 6 MLP neurons per layer perturbed, those neurons, the folder it is saved in)."""
    folder = tmp_path_factory.mktemp("donor")
    return *saved_sibling(tiny, folder), folder


def chart_names(at: AppTest) -> list[set[str]]:
    return [{t.get("name") for t in figure(at, i)["data"]} for i in range(len(at.get("plotly_chart")))]


def test_a_bias_transfer_measures_the_stereotype_and_lm_scores_before_and_after(tiny, sibling):
    donor, changed, folder = sibling
    at = page(pick(pair(folder), "bias"), "transfer")
    assert any("Toward 50%" in text for text in shown_texts(at))
    run(at.number_input(key="tf_count").set_value(len(changed)))  # weight-diff: exactly the perturbed neurons
    run(at.number_input(key="tf_bias_items").set_value(4))
    at = run(at.button(key="tf_run").click())
    made = at.session_state["transfer"]
    patch = made["patch"]
    assert patch.neurons == changed
    assert patch.meta["function"] == "bias" and patch.meta["ranking"] == "weight-diff"
    assert Patch.from_bytes(patch.to_bytes()).meta["function"] == "bias"  # the download carries it

    items = list(bundled_bias(["en"], split="heldout"))[:4]
    before = bias_scores(tiny, items)
    with patched(tiny, transfer_patch(donor, tiny, changed, check=False)):
        after = bias_scores(tiny, items)
    assert after["overall"]["preference"] != before["overall"]["preference"]  # the moved neurons matter
    assert made["results"]["before"]["overall"] == before["overall"]
    assert made["results"]["after"]["overall"] == after["overall"]
    assert {"before", "after"} <= set().union(*chart_names(at))
    assert any(m.label == "stereotype score after" for m in at.metric)

    run(at.button(key="tf_apply").click())
    assert at.session_state[state.PATCHES]["target"][1].meta["function"] == "bias"


def test_the_bias_curve_tracks_the_stereotype_score_beside_random_neurons(tiny):
    at = page(pick(app("tiny-llama"), "bias"), "transfer")
    run(at.selectbox(key="tf_ranking").select("random"))
    run(at.number_input(key="tf_prompts").set_value(3))
    run(at.number_input(key="tf_start").set_value(8))
    run(at.number_input(key="tf_cap").set_value(5.0))  # 5% of 512 MLP neurons: steps 8, 16, 26
    at = run(at.button(key="tf_search").click())
    result = at.session_state["tf_curve"]
    frame = result.to_frame()
    assert list(frame["k"]) == [0, 8, 16, 26]
    assert {"stereotype", "lm", "perplexity", "random_stereotype", "random_stereotype_se"} <= set(frame.columns)
    assert result.meta["function"] == "bias" and result.meta["items"] == 3
    items = list(bundled_bias("en", split="scan").spread(3))
    assert frame["stereotype"][0] == bias_scores(tiny, items)["overall"]["stereotype_score"]  # k = 0: as loaded
    assert {"stereotype score, ranked", "stereotype score, random"} <= set().union(*chart_names(at))


def test_your_own_transfer_measures_its_match_rates_before_and_after(tiny, sibling):
    donor, changed, folder = sibling
    at = page(own_function(pair(folder)), "transfer")
    assert "causal" not in at.selectbox(key="tf_ranking").options
    assert any("No transfer curve for your own function" in text for text in shown_texts(at))
    run(at.number_input(key="tf_count").set_value(len(changed)))
    run(at.number_input(key="tf_match_tokens").set_value(6))
    at = run(at.button(key="tf_run").click())
    made = at.session_state["transfer"]
    assert made["patch"].neurons == changed and made["patch"].meta["function"] == "match"

    held = heldout_prompts(["en"], 20, parse_prompts(reply_language_file(), "jsonl", labels=LABELS))
    pattern = re.compile(PATTERN, re.IGNORECASE)
    before = match_rates(tiny, held, ["en"], LABELS, pattern, max_new_tokens=6)
    with patched(tiny, transfer_patch(donor, tiny, changed, check=False)):
        after = match_rates(tiny, held, ["en"], LABELS, pattern, max_new_tokens=6)
    for name, expected in (("before", before), ("after", after)):
        for label in LABELS:
            got = made["results"][name]["en"][label]
            assert got["n"] == 2 and got["hits"] == expected["en"][label]["hits"]
            assert [e["reply"] for e in got["examples"]] == [e["reply"] for e in expected["en"][label]["examples"]]

    run(at.selectbox(key="tf_ranking").select("contrast"))
    run(at.toggle(key="tf_measure").set_value(False))
    at = run(at.button(key="tf_run").click())
    scan = parse_prompts(reply_language_file(), "jsonl", labels=LABELS).filter(split="scan")
    scores = contrast_scores(donor, *(scan.filter(label=label).texts for label in LABELS))
    assert at.session_state["transfer"]["patch"].neurons == scores.top(count=len(changed))
