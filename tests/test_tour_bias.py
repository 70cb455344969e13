"""The Tour's bias step (AppTest, demo-target): the stereotype and LM scores of held-out bias items, its figure,
and what it says while the bias pair is not built."""
from dataclasses import replace

import pytest

from neuronlab.data.bias import bundled_bias
from neuronlab.evaluation.bias import bias_scores
from neuronlab.models.builtins import BUILTINS
from neuronlab.neurons.patches import Patch
from tests.support.apptest import app, figure, page, run
from webui.tour_bias import BIAS_DONOR, ITEMS, pair_built

BIAS_STEP = 6


def test_the_bias_step_measures_demo_target_and_shows_the_figure(smol):
    at = page(app(), "tour")
    at = run(at.button(key=f"tour_step_{BIAS_STEP}").click())
    results = at.session_state["tour"]["bias"]["results"]
    expected = bias_scores(smol, list(bundled_bias(["en"], split="heldout"))[:ITEMS])["overall"]
    assert results["demo-target"]["overall"]["stereotype_score"] == pytest.approx(expected["stereotype_score"])
    assert results["demo-target"]["overall"]["n"] == ITEMS
    bars = {(t["name"], t["xaxis"]): t["y"] for t in figure(at)["data"]}
    assert bars[("demo-target", "x")][-1] == pytest.approx(100 * expected["stereotype_score"])
    assert bars[("demo-target", "x2")][-1] == pytest.approx(100 * expected["lm_score"])
    assert at.metric[0].value == f"{expected['stereotype_score']:.0%}"
    assert any("How to read this" in c.value for c in at.caption)
    if pair_built():
        assert len(results) == 3 and BIAS_DONOR in results
    else:
        assert len(results) == 1 and any("not built" in i.value for i in at.info)


@pytest.mark.real_model  # the app loads demo-donor by name
def test_with_the_bias_pair_built_the_step_measures_the_donor_and_a_transfer(monkeypatch):
    """The step's second half, on the shipped bias-donor (or, where it is missing, demo-donor standing in)."""
    if not pair_built():
        monkeypatch.setitem(BUILTINS, BIAS_DONOR, replace(BUILTINS["demo-donor"], name=BIAS_DONOR))
    at = page(app(), "tour")
    at = run(at.button(key=f"tour_step_{BIAS_STEP}").click())
    step = at.session_state["tour"]["bias"]
    moved = f"demo-target + {step['moved']:,} donor neurons"
    assert list(step["results"]) == ["demo-target", BIAS_DONOR, moved]
    changed = Patch.load(BUILTINS[BIAS_DONOR].patches[-1]).neurons
    assert step["moved"] == len(changed)  # the neurons the donor's patch changed, all of them: the donor itself
    assert step["results"][moved]["overall"] == step["results"][BIAS_DONOR]["overall"]
    assert [t["name"] for t in figure(at)["data"] if t["xaxis"] == "x"] == list(step["results"])
    assert len(at.metric) == 3 and "toward 50%" in at.metric[1].delta and not at.info
