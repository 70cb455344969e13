"""Patches and transfer on the real demo model: exact copies, bit-identical reverts, clear refusals."""
import copy

import pytest
import torch

from neuronlab import NeuronSet
from neuronlab.cli import main
from neuronlab.neurons.patches import Patch, PatchError, apply_patch, extract_patch, patched
from neuronlab.neurons.sets import random_like
from neuronlab.transfer.ranking import transfer_patch, weight_diff_scores

CHANGED = NeuronSet([(3, "mlp", 7), (3, "mlp", 900), (20, "mlp", 42), (5, "attn_v", 11), (8, "attn_o", 100)])


@pytest.fixture(scope="module")
def donor(smol):
    """A sibling of the demo model whose CHANGED neurons (all their weight slices) were perturbed."""
    sibling = copy.copy(smol)
    sibling.model = copy.deepcopy(smol.model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for (layer, site), idx in CHANGED.grouped().items():
            block = sibling.arch.layer(sibling.model, layer)
            for ws in sibling.arch.sites[site].weights:
                p = block.get_parameter(ws.param)
                pos = torch.as_tensor(idx + ws.offset)
                noise = torch.randn(p.index_select(ws.dim, pos).shape, generator=gen)
                p.index_add_(ws.dim, pos, noise * p.std())
    return sibling


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_weight_diff_ranks_the_changed_neurons_first(smol, donor):
    scores = weight_diff_scores(donor, smol, sites=("mlp", "attn_v", "attn_o"))
    assert scores.top(count=len(CHANGED)) == CHANGED
    assert scores.top(count=2, within=NeuronSet.from_indices(3, "mlp", range(1536))) == \
        NeuronSet([(3, "mlp", 7), (3, "mlp", 900)])


def test_apply_copies_exactly_and_revert_is_bit_identical(smol, donor):
    before = state(smol.model)
    patch = transfer_patch(donor, smol, CHANGED)
    assert patch.meta["target_fingerprint"] == smol.info.fingerprint and patch.meta["neurons"] == 5
    assert 0 < patch.meta["share_of_parameters"] < 1e-4
    with patched(smol, patch):
        after = smol.model.state_dict()
        for name, value in after.items():
            if not torch.equal(value, before[name]):
                assert torch.equal(value, donor.model.state_dict()[name])  # changed tensors now hold the donor's
        gate = smol.model.model.layers[3].mlp.gate_proj.weight
        assert torch.equal(gate[[7, 900]], donor.model.model.layers[3].mlp.gate_proj.weight[[7, 900]])
        assert torch.equal(gate[8], before["model.layers.3.mlp.gate_proj.weight"][8])  # untouched rows stay
        down = smol.model.model.layers[20].mlp.down_proj.weight[:, 42]
        assert torch.equal(down, donor.model.model.layers[20].mlp.down_proj.weight[:, 42])
    for name, value in smol.model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_patch_file_round_trip_and_checks(smol, donor, tiny, tmp_path):
    patch = transfer_patch(donor, smol, CHANGED)
    path = patch.save(tmp_path / "p.safetensors")
    loaded = Patch.load(path)
    assert loaded.neurons == CHANGED and loaded.meta == patch.meta
    assert all(torch.equal(loaded.tensors[k], v) for k, v in patch.tensors.items())
    undo = apply_patch(smol, loaded)
    with pytest.raises(PatchError, match="made for a model with fingerprint"):
        apply_patch(smol, loaded)  # the model changed: the patch no longer fits
    apply_patch(smol, undo, check_fingerprint=False)
    with pytest.raises(PatchError, match="made for a model with fingerprint"):
        apply_patch(tiny, loaded)
    (tmp_path / "junk.safetensors").write_bytes(b"not a patch at all")
    with pytest.raises(PatchError, match=r"not a NeuronLab patch \(safetensors\) file"):
        Patch.load(tmp_path / "junk.safetensors")
    unbound = extract_patch(smol, CHANGED)  # no target fingerprint: only the neurons and shapes are checked
    with pytest.raises(ValueError, match="out of range"):
        apply_patch(tiny, unbound)


def test_random_like_keeps_the_per_layer_distribution(smol):
    control = random_like(CHANGED, smol.arch, seed=1)
    assert control.per_layer_counts() == CHANGED.per_layer_counts()
    assert control != CHANGED and random_like(CHANGED, smol.arch, seed=1) == control


@pytest.mark.real_model  # loads demo-target by name, not through a fixture
def test_transfer_cli_writes_a_patch_chat_can_apply(tmp_path, capsys):
    out = tmp_path / "t.safetensors"
    assert main(["transfer", "--donor", "tiny-llama", "--target", "tiny-llama", "--count", "10", "--out", str(out)]) == 0
    assert "10 neurons" in capsys.readouterr().out
    patch = Patch.load(out)
    assert len(patch.neurons) == 10 and patch.meta["direction"] == "add"
    assert main(["chat", "--model", "tiny-llama", "--patch", str(out), "--prompt", "hi", "--max-new-tokens", "3"]) == 0
    assert main(["transfer", "--donor", "tiny-llama", "--target", "demo-target", "--count", "3",
                 "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "not compatible" in capsys.readouterr().err
