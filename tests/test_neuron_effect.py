"""One neuron's causal effect equals an ablation done independently, in the weights instead of a hook."""
import math

import pytest
import torch

from neuronlab import Intervention, fingerprint
from neuronlab.data.bias import bundled_bias
from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.bias import preference
from neuronlab.evaluation.metrics import refusal_score
from neuronlab.evaluation.neuron_effect import (
    LABELS,
    control_neurons,
    layer_effects,
    neuron_bias_effect,
    neuron_effect,
)
from neuronlab.neurons.sets import Neuron, NeuronSet, NeuronSetError
from neuronlab.plots.neurons import effect_figure

NEURON = Neuron(1, "mlp", 17)


@pytest.fixture(scope="module")
def prompts():
    return bundled_prompts(["en", "zh"], split="heldout").parallel_head(3)


@pytest.fixture(scope="module")
def measured(tiny, prompts):
    return neuron_effect(tiny, NEURON, prompts, ["en", "zh"], scale=3.0, controls=3)


def scores_with_column_scaled(lm, prompts, neuron, factor):
    """{lang: {label: mean refusal score}} with column ``index`` of the layer's down_proj multiplied by ``factor``:
    the neuron's output written into the weights, with no hook involved."""
    weight = lm.model.model.layers[neuron.layer].mlp.down_proj.weight  # [hidden, intermediate]
    saved = weight[:, neuron.index].clone()
    with torch.no_grad():
        weight[:, neuron.index] *= factor
    try:
        return {lang: {label: refusal_score(lm, prompts.filter(lang=lang, label=label).texts, lang).mean().item()
                       for label in LABELS} for lang in ("en", "zh")}
    finally:
        with torch.no_grad():
            weight[:, neuron.index] = saved


@pytest.mark.parametrize("mode, factor", [("suppress", 0.0), ("activate", 3.0)])
def test_the_effect_equals_an_ablation_in_the_weights(tiny, prompts, measured, mode, factor):
    before = fingerprint(tiny.model)
    expected = scores_with_column_scaled(tiny, prompts, NEURON, factor)
    assert fingerprint(tiny.model) == before
    for lang in ("en", "zh"):
        for label in LABELS:
            assert math.isclose(measured.changed[mode][lang][label], expected[lang][label], abs_tol=1e-4)
            assert math.isclose(measured.change(mode)[lang][label],
                                expected[lang][label] - measured.baseline[lang][label], abs_tol=1e-4)


def test_the_baseline_is_the_model_as_loaded(tiny, prompts, measured):
    plain = refusal_score(tiny, prompts.filter(lang="en", label="harmful").texts, "en").mean().item()
    assert measured.baseline["en"]["harmful"] == pytest.approx(plain, abs=1e-6)
    assert measured.n == {"en": 3, "zh": 3}


def test_controls_are_other_neurons_of_the_same_layer_and_site_and_summarise_their_changes(tiny, prompts, measured):
    assert len(measured.control_neurons) == 3
    assert all(n.layer == NEURON.layer and n.site == NEURON.site and n != NEURON for n in measured.control_neurons)
    assert control_neurons(tiny, NEURON, 3) == measured.control_neurons  # seeded
    first = measured.control_neurons[0]
    alone = neuron_effect(tiny, first, prompts, ["en"], controls=0)
    mean, _ = measured.control_change("suppress")["en"]["harmful"]
    deltas = [t["en"]["harmful"] - measured.baseline["en"]["harmful"] for t in measured.controls["suppress"]]
    assert mean == pytest.approx(sum(deltas) / 3)
    assert deltas[0] == pytest.approx(alone.change("suppress")["en"]["harmful"], abs=1e-5)


def test_the_json_form_has_every_figure(measured):
    doc = measured.to_dict()
    assert doc["neuron"] == [1, "mlp", 17]
    assert set(doc["change"]) == set(doc["random_change"]) == {"suppress", "activate"}
    assert doc["random_change"]["activate"]["zh"]["harmless"].keys() == {"mean", "sd"}


def test_a_neuron_the_model_does_not_have_is_named(tiny, prompts):
    with pytest.raises(NeuronSetError, match="index out of range"):
        neuron_effect(tiny, Neuron(1, "mlp", 10**6), prompts, ["en"])
    with pytest.raises(NeuronSetError, match="no prompts for fr/harmful"):
        neuron_effect(tiny, NEURON, prompts, ["fr"])


def test_layer_effects_switch_off_each_layers_neurons_together(tiny, prompts):
    neurons = NeuronSet([(0, "mlp", 3), (0, "mlp", 40), (1, "mlp", 17)])
    out = layer_effects(tiny, neurons, prompts, "en")
    weight = tiny.model.model.layers[0].mlp.down_proj.weight  # [hidden, intermediate]
    saved = weight[:, [3, 40]].clone()
    with torch.no_grad():
        weight[:, [3, 40]] = 0
    try:
        off = refusal_score(tiny, prompts.filter(lang="en", label="harmless").texts, "en").mean().item()
    finally:
        with torch.no_grad():
            weight[:, [3, 40]] = saved
    plain = refusal_score(tiny, prompts.filter(lang="en", label="harmless").texts, "en").mean().item()
    assert out["harmless"][0] == pytest.approx(off - plain, abs=1e-4)
    assert out["harmful"][1] != 0.0 and len(out["harmful"]) == tiny.arch.n_layers
    assert all(v == 0.0 for v in out["harmful"][2:])  # no neurons there: no pass, no change


def test_a_bias_effect_is_the_change_of_the_mean_stereotype_preference(tiny):
    items = list(bundled_bias(["en", "fr"], split="heldout").spread(3))
    effect = neuron_bias_effect(tiny, NEURON, items, scale=3.0, controls=2)
    for lang in ("en", "fr"):
        own = [it for it in items if it.lang == lang]
        base = preference(tiny, own).mean().item()
        for mode, value in (("suppress", None), ("activate", 3.0)):
            changed = preference(tiny, own, [Intervention(NeuronSet([NEURON]), mode, value)]).mean().item()
            assert effect.change(mode)[lang]["preference"] == pytest.approx(changed - base, abs=1e-6)
    assert effect.n == {"en": 3, "fr": 3} and len(effect.control_neurons) == 2
    assert effect.to_dict()["score"] == "stereotype preference"
    fig = effect_figure(effect)
    assert list(fig.data[0].x) == ["en", "fr"] and fig.layout.yaxis.title.text == "stereotype preference change"
