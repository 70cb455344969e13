"""The Evaluate page's bias behaviour (AppTest, tiny-llama): the chart shows what ``bias_scores`` computes, as
loaded and with the session's intervention."""
import pytest

from neuronlab import Intervention, NeuronSet
from neuronlab.data.bias import bundled_bias
from neuronlab.evaluation.bias import bias_scores
from tests.support.apptest import app, figure, page, run
from webui import state


def test_bias_evaluation_of_the_plain_and_intervened_model(tiny):
    at = app("tiny-llama")
    off = [Intervention(NeuronSet.from_indices(1, "mlp", range(64)), "suppress", label="half of layer 1")]
    at.session_state[state.INTERVENTIONS] = {"target": off}
    at = page(at, "evaluate")
    at = run(at.selectbox(key=state.FUNCTION).select("bias"))
    run(at.number_input(key="evb_items").set_value(3))
    at = run(at.button(key="evb_run").click())
    results = at.session_state["bias_evaluation"]
    assert set(results) == {"plain", "intervened"}
    items = list(bundled_bias(["en"], split="heldout"))[:3]
    assert results["plain"]["overall"] == bias_scores(tiny, items)["overall"]
    assert results["intervened"]["overall"] == bias_scores(tiny, items, off)["overall"]
    bars = {(t["name"], t["xaxis"]): t["y"] for t in figure(at)["data"]}
    assert bars[("plain", "x")][0] == pytest.approx(100 * results["plain"]["languages"]["en"]["stereotype_score"])
    assert bars[("intervened", "x2")][-1] == pytest.approx(100 * results["intervened"]["overall"]["lm_score"])
    assert any("How to read this" in c.value for c in at.caption)
