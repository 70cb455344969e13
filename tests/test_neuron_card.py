"""The neuron card in the app (AppTest, tiny-llama as target and donor): it shows what the backend computes, its
buttons act, and its data downloads."""
import json
from types import SimpleNamespace

import pytest

from neuronlab.analysis.activations import activation_pass
from neuronlab.analysis.scan import DEFAULT_TOP_P, run_scan, select_sets
from neuronlab.data.bias import bundled_bias
from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.bias import preference
from neuronlab.experiments import heldout_prompts
from neuronlab.inspector import inspect_neuron
from neuronlab.neurons.sets import Neuron, NeuronSet
from tests.support.apptest import app, figure, page, run
from tests.support.functions import own_function
from webui import state
from webui.neuron_card import EFFECT_ITEMS, clicked

NEURON = Neuron(1, "mlp", 17)


@pytest.fixture(scope="module")
def scan(tiny):
    return run_scan(tiny, bundled_prompts(["en", "zh"]).head(4), ["en", "zh"], use_cache=False)


def card(scan, neuron=NEURON, role="target"):
    at = app("tiny-llama")
    at.session_state[state.SCAN] = scan
    at = page(at, "safety_neurons")
    at.session_state[state.INSPECTED] = (role, neuron)
    return run(at)


def chart_titles(at) -> list[str]:
    return [(figure(at, i).get("layout", {}).get("title") or {}).get("text", "")
            for i in range(len(at.get("plotly_chart")))]


def test_a_picked_neuron_opens_its_card_with_the_backends_figures(tiny, scan):
    at = card(scan)
    assert any("Neuron 1 mlp 17" in m.value for m in at.markdown)
    assert any(t.startswith("Neuron 1 mlp 17: activation") for t in chart_titles(at))
    langs = tuple(at.multiselect(key="card_langs").value)
    assert langs == ("en",)  # English and the heatmap's language (English)
    expected = inspect_neuron(tiny, activation_pass(tiny, heldout_prompts(langs, 8, split="scan"), ("mlp",)), NEURON)
    top = at.dataframe[-2].value  # "Fires most on" (the last table is "Most negative on")
    assert list(top["prompt"]) == [h.text for h in expected.profile.top]
    assert list(top["peak token"]) == [h.token for h in expected.profile.top]
    captions = [c.value for c in at.caption]
    assert sum("How to read this" in c for c in captions) >= 3  # activations, tokens, logit lens
    labels = {b.label for b in at.get("download_button")}
    assert {"Card data (JSON)", "Card data (CSV)"} <= labels


def test_the_card_measures_the_causal_effect_on_request(tiny, scan):
    at = card(scan)
    assert not any("refusal score change" in json.dumps(figure(at, i)) for i in range(len(at.get("plotly_chart"))))
    at = run(at.button(key="card_effect").click())
    effect = at.session_state["neuron_effects"][(at.session_state[state.MODELS]["target"], NEURON, ("en",))]
    assert effect.neuron == NEURON and len(effect.control_neurons) == 3
    bars = [t for i in range(len(at.get("plotly_chart"))) for t in figure(at, i)["data"]
            if t.get("name") == "this neuron"]
    assert len(bars) == 2  # switched off, scaled up
    assert bars[0]["y"][0] == pytest.approx(effect.change("suppress")["en"]["harmful"])


def test_suppress_now_opens_the_chat_with_that_neuron_switched_off(scan):
    at = card(scan)
    at = run(at.button(key="card_chat").click())
    assert at.text_input(key=state.IV_TYPED).value == "1 mlp 17"
    ivs = at.session_state[state.INTERVENTIONS]["target"]
    assert len(ivs) == 1 and ivs[0].mode == "suppress" and list(ivs[0].neurons) == [NEURON]


def test_add_to_a_set_and_compare_with_the_other_model(scan):
    at = card(scan)
    run(at.text_input(key="card_set_name").set_value("mine"))
    at = run(at.button(key="card_add").click())
    assert list(at.session_state[state.NEURON_SETS]["mine"]) == [NEURON]
    at = run(at.toggle(key="card_compare").set_value(True))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["rank among all neurons"] == "unchanged"  # the same model as both: no neuron changed
    assert float(metrics["weight change (donor − target)"]) == 0.0  # the same model as both


def test_a_neuron_the_model_lacks_is_a_message_not_an_exception(scan):
    at = card(scan, Neuron(1, "mlp", 5000))
    assert any("index out of range" in e.value for e in at.error)


def test_the_neurons_page_steps_through_a_set(scan):
    at = app("tiny-llama")
    at.session_state[state.NEURON_SETS] = {"mine": NeuronSet([(0, "mlp", 3), (2, "mlp", 9), (1, "mlp", 17)])}
    at = page(at, "neurons")
    run(at.selectbox(key="nb_set").select("mine"))
    assert at.session_state[state.INSPECTED] == ("target", Neuron(0, "mlp", 3))  # layer order
    at = run(at.number_input(key="nb_position:mine").increment())
    assert at.session_state[state.INSPECTED] == ("target", Neuron(1, "mlp", 17))
    assert any("Neuron 1 mlp 17" in m.value for m in at.markdown)
    at = run(at.button(key="card_other").click())  # the card's own button moves it to the donor
    assert at.session_state[state.INSPECTED] == ("donor", Neuron(1, "mlp", 17))


def test_the_layer_view_counts_each_sets_neurons_and_measures_layers_on_request(scan):
    at = card(scan)
    view = next(figure(at, i) for i in range(len(at.get("plotly_chart")))
                if figure(at, i)["layout"].get("meta", {}).get("rows"))
    safety = select_sets(scan, DEFAULT_TOP_P)
    bars = {t["name"]: t["y"] for t in view["data"]}
    assert bars["MS en"] == [safety.ms["en"].per_layer_counts().get(layer, 0) for layer in range(4)]
    anywhere = safety.ms["en"] | safety.ms["zh"]
    assert bars["MS, any language"] == [anywhere.per_layer_counts().get(layer, 0) for layer in range(4)]
    assert view["layout"]["meta"]["rows"] == ["counts"]  # no effect measured, no second model to compare
    run(at.selectbox(key="lv_set").select("en"))
    at = run(at.button(key="lv_measure").click())
    measured = next(v for k, v in at.session_state["layer_effects"].items() if k[1] == "en")
    view = next(figure(at, i) for i in range(len(at.get("plotly_chart")))
                if figure(at, i)["layout"].get("meta", {}).get("rows"))
    assert view["layout"]["meta"]["rows"] == ["counts", "effect"]
    assert {t["name"]: t["y"] for t in view["data"]}["off: harmful"] == pytest.approx(measured["harmful"])


def test_a_clicked_cell_names_its_neuron_in_either_shape_streamlit_hands_over():
    def event(*points):
        return SimpleNamespace(selection=SimpleNamespace(points=list(points)))
    assert clicked(event({"x": 614.5, "y": 15, "customdata": {"0": 15, "1": 615}}), "mlp") == Neuron(15, "mlp", 615)
    assert clicked(event({"customdata": [3, 7]}), "attn_o") == Neuron(3, "attn_o", 7)
    assert clicked(event({"x": 1, "y": 2}), "mlp") is None  # a point of another trace (the outline)
    assert clicked(None, "mlp") is None


def test_the_card_reads_the_users_own_prompt_file(scan):
    at = card(scan)
    run(at.radio(key="scan_source").set_value("upload"))
    rows = [f'{{"id": "{label}-{i}", "lang": "en", "label": "{label}", "text": "my own {label} request {i} @"}}'
            for label in ("harmful", "harmless") for i in range(3)]
    at = run(at.file_uploader(key="scan_upload").set_value(("mine.jsonl", "\n".join(rows).encode(), "x")))
    at.session_state[state.INSPECTED] = ("target", NEURON)
    at = run(at.radio(key="card_source").set_value("mine.jsonl"))
    prompts = set(at.dataframe[-2].value["prompt"]) | set(at.dataframe[-1].value["prompt"])
    assert prompts and all(p.startswith("my own") for p in prompts)


def test_the_card_measures_a_bias_effect_on_the_stereotype_preference_and_none_for_your_own(tiny):
    at = app("tiny-llama")
    at.session_state[state.NEURON_SETS] = {"one": NeuronSet([NEURON])}  # the Neurons page opens the card on it
    at = page(run(at.selectbox(key=state.FUNCTION).select("bias")), "neurons")
    at = run(at.button(key="card_effect").click())
    langs = tuple(at.multiselect(key="card_langs").value)
    effect = at.session_state["neuron_effects"][(at.session_state[state.MODELS]["target"], NEURON, langs, "bias")]
    items = list(bundled_bias("en", split="heldout").spread(EFFECT_ITEMS))
    assert effect.baseline == {"en": {"preference": pytest.approx(preference(tiny, items).mean().item(), abs=1e-6)}}
    bars = [t for i in range(len(at.get("plotly_chart"))) for t in figure(at, i)["data"] if t.get("name") == "this neuron"]
    assert bars[0]["y"][0] == pytest.approx(effect.change("suppress")["en"]["preference"])
    at = own_function(at)
    assert any("No causal effect for your own function" in m.value for m in at.info)
    assert "card_effect" not in [b.key for b in at.button]
