"""``python -m neuronlab inspect``: the card's figures as JSON or text, the same as the library computes, and one
line (exit 2) for a neuron the model lacks."""
import json

import pytest

from neuronlab.analysis.activations import activation_pass
from neuronlab.cli import main
from neuronlab.experiments import heldout_prompts
from neuronlab.inspector import inspect_neuron
from neuronlab.neurons.sets import Neuron, NeuronSet

COMMON = ["inspect", "--model", "tiny-llama", "--langs", "en", "--per-label", "3", "--controls", "1"]


def test_json_is_what_the_library_computes(tiny, tmp_path, capsys):
    ref = NeuronSet([(1, "mlp", 17), (0, "mlp", 2)]).save(tmp_path / "mine.json")
    assert main(COMMON + ["--neuron", "1 mlp 17", "--donor", "tiny-llama", "--set", str(ref), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = inspect_neuron(tiny, activation_pass(tiny, heldout_prompts(["en"], 3, split="scan"), ("mlp",)),
                              Neuron(1, "mlp", 17)).profile.to_dict()
    assert out["profile"]["neuron"] == {"layer": 1, "site": "mlp", "index": 17}
    assert [h["id"] for h in out["profile"]["top"]] == [h["id"] for h in expected["top"]]
    assert out["profile"]["promoted"] == expected["promoted"]
    assert out["membership"] == {str(ref): True}
    assert set(out["effect"]["change"]) == {"suppress", "activate"} and len(out["effect"]["random_neurons"]) == 1
    assert out["donor"]["rank"] == 1 and out["donor"]["weight_change"] == 0.0  # a model against itself


def test_text_names_each_part(capsys):
    assert main(COMMON + ["--neuron", "1 mlp 17", "--no-effect"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("tiny-llama · neuron 1 mlp 17")
    assert "fires most on:" in text and "writes toward (logit lens)" in text and "refusal score change" not in text


@pytest.mark.parametrize("neuron, fragment", [("1 mlp 5000", "index out of range"), ("0-1 mlp 3", "names 2 neurons"),
                                              ("one mlp 3", "'one' is not a layer"),
                                              ("1 ffn 3", "write LAYERS SITE INDICES")])
def test_a_neuron_the_model_lacks_is_one_line(neuron, fragment, capsys):
    assert main(COMMON + ["--neuron", neuron]) == 2
    out, err = capsys.readouterr()
    assert not out and err.startswith("error: ") and err.count("\n") == 1 and fragment in err, err
