"""The Evaluate page's bias behaviour (AppTest, tiny-llama): the chart shows what ``bias_scores`` computes, as
loaded and with the session's intervention, on the bundled items or on an uploaded file."""
import pytest

from neuronlab import Intervention, NeuronSet
from neuronlab.data.bias import bundled_bias, parse_bias
from neuronlab.data.examples import EXAMPLES_DIR
from neuronlab.evaluation.bias import bias_scores
from tests.support.apptest import app, errors, figure, page, run
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


def bias_page():
    at = page(app("tiny-llama"), "evaluate")
    at = run(at.selectbox(key=state.FUNCTION).select("bias"))
    return run(at.radio(key="evb_source").set_value("upload"))


def test_an_uploaded_bias_file_is_scored_on_its_held_out_items(tiny):
    at = bias_page()
    assert at.button(key="evb_run").disabled  # nothing to score before a file comes
    content = (EXAMPLES_DIR / "bias.csv").read_bytes()
    at = run(at.file_uploader(key="evb_upload").set_value(("mine.csv", content, "text/csv")))
    assert not errors(at) and any("2 held-out items" in c.value for c in at.caption)
    at = run(at.button(key="evb_run").click())
    heldout = list(parse_bias(content, "csv").filter(split="heldout"))
    assert at.session_state["bias_evaluation"]["plain"]["overall"] == bias_scores(tiny, heldout)["overall"]
    assert figure(at)["data"] and set(at.session_state["bias_evaluation"]["plain"]["languages"]) == {"en", "fr"}


def test_a_bad_bias_file_shows_its_problem_and_the_page_stays_up():
    at = bias_page()
    bad = b'{"id": "x1", "lang": "en", "domain": "gender", "context": "no blank here", "stereotype": "a", ' \
          b'"anti_stereotype": "b", "unrelated": "c", "split": "heldout"}\n'
    at = run(at.file_uploader(key="evb_upload").set_value(("mine.jsonl", bad, "application/jsonl")))
    (message,) = errors(at)
    assert "mine.jsonl" in message and "line 1" in message and "BLANK exactly once" in message
    assert at.button(key="evb_run").disabled
