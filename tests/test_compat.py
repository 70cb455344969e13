"""Donor/target compatibility: what differs is named; siblings share a basis, strangers do not."""
import copy

import torch

from neuronlab.transfer.compatibility import check_compatibility


def test_a_model_is_compatible_with_itself_and_a_fine_tuned_copy(smol):
    same = check_compatibility(smol, smol)
    assert same.compatible and not same.problems and len(same.layer_similarity) == 30
    assert min(same.layer_similarity) > 0.999999
    sibling = copy.copy(smol)
    sibling.model = copy.deepcopy(smol.model)
    with torch.no_grad():
        for p in sibling.model.model.layers[3].mlp.parameters():
            p.add_(0.01 * torch.randn_like(p))
    result = check_compatibility(smol, sibling)
    assert result.compatible and result.layer_similarity[3] < result.layer_similarity[2]


def test_differences_are_named(smol, tiny):
    result = check_compatibility(smol, tiny)
    assert not result.compatible
    text = " ".join(result.problems)
    for what in ("layers: donor 30 vs target 4", "hidden size", "heads", "vocabulary size: donor 49152 vs target 258"):
        assert what in text


def test_unrelated_weights_share_no_basis(smol):
    stranger = copy.copy(smol)
    stranger.model = copy.deepcopy(smol.model)
    with torch.no_grad():
        for p in stranger.model.model.layers[7].mlp.parameters():
            p.copy_(torch.randn_like(p) * p.std())
    result = check_compatibility(smol, stranger)
    assert not result.compatible and "layers [7]" in result.problems[0]
