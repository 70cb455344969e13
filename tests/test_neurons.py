"""NeuronSet: set algebra, counts, validation against a model, JSON and safetensors round trips."""
import json

import pytest
from safetensors.torch import load_file, save_file

from neuronlab import Neuron, NeuronSet, NeuronSetError, load_neuron_set
from neuronlab.neurons.sets import neuron_sets_json, parse_neurons, read_neuron_sets

A = NeuronSet([(0, "mlp", 1), (0, "mlp", 2), (3, "attn_q", 7)], name="a")
B = NeuronSet([(0, "mlp", 2), (5, "mlp", 9)], name="b")


def test_set_algebra_and_counts():
    assert A | B == NeuronSet([(0, "mlp", 1), (0, "mlp", 2), (3, "attn_q", 7), (5, "mlp", 9)])
    assert A & B == NeuronSet([(0, "mlp", 2)])
    assert A - B == NeuronSet([(0, "mlp", 1), (3, "attn_q", 7)])
    assert isinstance(A | B, NeuronSet) and isinstance(A - B, NeuronSet)
    assert (0, "mlp", 2) in A and (0, "mlp", 3) not in A and "junk" not in A
    assert A.per_layer_counts() == {0: 2, 3: 1} and A.per_layer_counts("mlp") == {0: 2}
    assert list(A)[0] == Neuron(0, "mlp", 1) and A.layers == [0, 3] and A.sites == ["attn_q", "mlp"]
    assert {A: 1}[NeuronSet(list(A))] == 1  # hashable, equal by content


def test_immutable():
    with pytest.raises(AttributeError, match="immutable"):
        A.name = "changed"
    assert not hasattr(A, "add") and A.renamed("c").name == "c" and A.name == "a"


def test_malformed_neurons_are_rejected():
    for bad in [(0, "mlp"), ("x", "mlp", 1), (0, 3, 1), (True, "mlp", 1)]:
        with pytest.raises(NeuronSetError, match="not a \\(layer, site, index\\) neuron"):
            NeuronSet([bad])


def test_validate_names_the_offending_entry(tiny):
    arch = tiny.arch
    assert NeuronSet([(3, "mlp", 127), (0, "attn_k", 31)]).validate(arch)
    with pytest.raises(NeuronSetError, match=r"\(0, 'mlp', 128\).*index out of range \(mlp has 128"):
        NeuronSet([(0, "mlp", 128)]).validate(arch)
    with pytest.raises(NeuronSetError, match=r"\(4, 'mlp', 0\).*layer out of range \(model has 4"):
        NeuronSet([(4, "mlp", 0)]).validate(arch)
    with pytest.raises(NeuronSetError, match=r"unknown site 'ffn'"):
        NeuronSet([(0, "ffn", 0)]).validate(arch)


def test_json_round_trip_and_explicit_lists(tmp_path):
    data = A.to_json(model="tiny")
    assert data["neurons"] == {"mlp": {"0": [1, 2]}, "attn_q": {"3": [7]}} and data["count"] == 3
    back = NeuronSet.from_json(json.loads(json.dumps(data)))
    assert back == A and back.name == "a"
    assert NeuronSet.from_json([[0, "mlp", 1], {"layer": 3, "site": "attn_q", "index": 7}]) == A - B | {(3, "attn_q", 7)}
    path = A.save(tmp_path / "a.json")
    assert load_neuron_set(path) == A


def test_references_into_a_multi_set_file(tmp_path):
    path = tmp_path / "neurons.json"
    path.write_text(json.dumps({"sets": {"en": A.to_json(), "ss": B.to_json()}}))
    assert load_neuron_set(f"{path}#ss") == B
    with pytest.raises(NeuronSetError, match="no neuron set named 'zh' \\(available: en, ss\\)"):
        load_neuron_set(f"{path}#zh")
    with pytest.raises(NeuronSetError, match="holds several sets"):
        load_neuron_set(path)
    with pytest.raises(NeuronSetError, match="not found"):
        load_neuron_set(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(NeuronSetError, match="not valid JSON"):
        load_neuron_set(tmp_path / "bad.json")


def test_safetensors_round_trip(tmp_path):
    tensors = (A | B).to_tensors(prefix="neurons.")
    save_file(tensors, tmp_path / "n.safetensors")
    assert NeuronSet.from_tensors(load_file(tmp_path / "n.safetensors"), prefix="neurons.") == A | B


def test_typed_neurons(tiny):
    arch = tiny.arch  # 4 layers, 128 MLP neurons
    assert parse_neurons("3 mlp 17,20", arch) == NeuronSet([(3, "mlp", 17), (3, "mlp", 20)])
    assert parse_neurons("0-1 mlp *", arch) == NeuronSet((layer, "mlp", i) for layer in (0, 1) for i in range(128))
    assert parse_neurons("2 mlp 5-7, 9\n* attn_v 0; ", arch) == \
        NeuronSet([(2, "mlp", 5), (2, "mlp", 6), (2, "mlp", 7), (2, "mlp", 9)] + [(layer, "attn_v", 0) for layer in range(4)])
    assert parse_neurons("", arch) == NeuronSet()
    for bad, match in [("3 ffn 1", "SITE one of"), ("3 mlp", "SITE one of"), ("x mlp 1", "numbers, ranges"),
                       ("9 mlp 1", "layer out of range"), ("0 mlp 128", "index out of range")]:
        with pytest.raises(NeuronSetError, match=match):
            parse_neurons(bad, arch)


def test_neuron_set_files_read_back_from_bytes(tmp_path):
    sets = {"a": A, "b": B}
    content = neuron_sets_json(sets)
    assert read_neuron_sets(content.encode(), "all.json") == sets
    (tmp_path / "all.json").write_text(content)
    assert load_neuron_set(f"{tmp_path / 'all.json'}#b") == B
    assert read_neuron_sets(json.dumps(A.to_json()), "x.json") == {"a": A}
    assert list(read_neuron_sets(json.dumps([[0, "mlp", 1]]), "picked.json")) == ["picked"]
    with pytest.raises(NeuronSetError, match="up.json: not valid JSON"):
        read_neuron_sets(b"\xff{", "up.json")
    with pytest.raises(NeuronSetError, match="a neuron set is"):
        read_neuron_sets(b'{"hello": 1}', "up.json")
