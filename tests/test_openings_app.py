"""A user-defined function measured by its reply openings in the app (AppTest, tiny-llama): picked in the sidebar,
scanned, its neurons suppressed, and evaluated plain vs intervened with the numbers of ``opening_rates``; the
Transfer page measures the same metric before and after."""
import math

from neuronlab import Intervention
from neuronlab.analysis.scan import DEFAULT_TOP_P, select_sets
from neuronlab.data.prompts import parse_prompts
from neuronlab.evaluation.functions import opening_rates
from neuronlab.evaluation.metrics import opening_score
from neuronlab.experiments import heldout_prompts
from neuronlab.neurons.patches import patched
from neuronlab.transfer.ranking import transfer_patch
from tests.support.apptest import app, errors, figure, page, pair, run
from tests.support.builders import saved_sibling
from tests.support.functions import LABELS, own_function, reply_language_file
from webui import state

OPENINGS = ("B", "J", "O")  # one byte each: tiny-llama's random scores spread around a usable threshold


def held():
    return heldout_prompts(["en"], 20, parse_prompts(reply_language_file(), "jsonl", labels=LABELS))


def middle_threshold(lm) -> float:
    """A probability between the second and third lowest scores of the held-out prompts: some pass, some not."""
    every = sorted(opening_score(lm, held().texts, OPENINGS).tolist())
    return math.exp((every[1] + every[2]) / 2)


def test_bad_openings_get_one_message():
    at = own_function(app("tiny-llama"), openings=" | ")
    assert [m for m in errors(at) if "give 1 to 50 reply openings" in m]


def test_your_own_function_by_openings_evaluates_plain_vs_intervened(tiny):
    threshold = middle_threshold(tiny)
    at = own_function(app("tiny-llama"), openings="\n".join(OPENINGS), threshold=threshold)
    assert at.session_state[state.USER_FUNCTION].openings == OPENINGS
    at = page(at, "safety_neurons")
    run(at.button(key="scan_run").click())
    scan = at.session_state[state.SCAN]
    at = page(at, "intervene")
    run(at.multiselect(key=state.IV_SETS).set_value(["scan#en"]))
    neurons = select_sets(scan, DEFAULT_TOP_P).ms["en"]

    at = page(at, "evaluate")
    assert any("whose reply opens with one of" in c.value and "replies to french prompts should open so" in c.value
               for c in at.caption)
    assert not [n for n in at.number_input if n.key == "evm_tokens"]  # nothing is generated
    at = run(at.button(key="evm_run").click())
    doc = at.session_state["own_evaluation"]
    assert set(doc["variants"]) == {"plain", "intervened"} and f"probability ≥ {threshold:g}" in doc["metric"]
    for name, ivs in (("plain", []), ("intervened", [Intervention(neurons, "suppress")])):
        assert doc["variants"][name] == opening_rates(tiny, held(), ["en"], LABELS, OPENINGS, threshold, ivs)
    assert 0 < sum(doc["variants"]["plain"]["en"][label]["hits"] for label in LABELS) < 4
    bars = {t["name"]: t for t in figure(at)["data"]}
    assert set(bars) == {"plain", "intervened"} and list(bars["plain"]["x"]) == ["en french", "en english"]
    assert any("How to read this" in c.value and "opens with one of your openings" in c.value for c in at.caption)


def test_your_own_transfer_measures_its_openings_before_and_after(tiny, tmp_path):
    donor, changed = saved_sibling(tiny, tmp_path)
    threshold = middle_threshold(tiny)
    at = page(own_function(pair(tmp_path), openings="|".join(OPENINGS), threshold=threshold), "transfer")
    run(at.number_input(key="tf_count").set_value(len(changed)))
    at = run(at.button(key="tf_run").click())
    made = at.session_state["transfer"]
    assert made["patch"].neurons == changed and made["patch"].meta["function"] == "openings"
    before = opening_rates(tiny, held(), ["en"], LABELS, OPENINGS, threshold)
    with patched(tiny, transfer_patch(donor, tiny, changed, check=False)):
        after = opening_rates(tiny, held(), ["en"], LABELS, OPENINGS, threshold)
    assert made["results"] == {"before": before, "after": after}
    assert before != after  # the moved neurons matter
