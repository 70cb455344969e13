"""make_transfer: rank, take the top, copy, in either direction (what the CLI, the pages, the Tour and ship run)."""
import pytest
import torch

from neuronlab import NeuronSet, load_model
from neuronlab.neurons.patches import patched
from neuronlab.transfer.plan import make_transfer


@pytest.fixture(scope="module")
def changed_donor():
    """A second tiny-llama whose layer-1 MLP neurons 0-5 write 3x their target's output: a donor that differs
    from the target in known neurons."""
    lm = load_model("tiny-llama")
    with torch.no_grad():
        lm.arch.layer(lm.model, 1).mlp.down_proj.weight[:, :6] *= 3
    return lm


def test_weight_diff_takes_the_changed_neurons_and_the_patch_moves_them(tiny, changed_donor):
    changed = NeuronSet((1, "mlp", i) for i in range(6))
    made = make_transfer(changed_donor, tiny, "weight-diff", "add", count=6)
    assert made.neurons == changed and made.patch.neurons == changed and made.patch.kind == "transfer"
    assert made.patch.meta["direction"] == "add" and made.patch.meta["ranking"] == "weight-diff"
    target_block = tiny.arch.layer(tiny.model, 1).mlp.down_proj.weight
    with patched(tiny, made.patch):  # the target now writes the donor's outputs for those neurons
        assert torch.equal(target_block[:, :6], changed_donor.arch.layer(changed_donor.model, 1).mlp.down_proj.weight[:, :6])
    half = make_transfer(changed_donor, tiny, "weight-diff", "add", within=changed, fraction=0.5)
    assert half.neurons <= changed and len(half.neurons) == 3


def test_a_deletion_copies_from_the_target_into_the_donor(tiny):
    made = make_transfer(tiny, tiny, "random", "delete", fraction=0.01, check=False)
    assert made.direction == "delete" and made.patch.meta["direction"] == "delete"
    with patched(tiny, made.patch):  # written into the donor: made for it
        pass


def test_an_unknown_direction_is_refused(tiny):
    with pytest.raises(ValueError, match="unknown direction"):
        make_transfer(tiny, tiny, "random", "sideways", count=1, check=False)
