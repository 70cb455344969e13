"""The first-order estimate of how switching a neuron off changes the mean stereotype preference
(``evaluation.bias_attribution``), checked against switching neurons off for real."""
import pytest
import torch

from neuronlab import Intervention, NeuronSet
from neuronlab.data.bias import bundled_bias
from neuronlab.evaluation.bias import preference
from neuronlab.evaluation.bias_attribution import preference_attribution
from neuronlab.neurons.patches import fingerprint


def test_the_estimate_ranks_neurons_as_switching_them_off_does(tiny):
    items = list(bundled_bias("en", "scan").spread(6))
    before = fingerprint(tiny.model)
    scores = preference_attribution(tiny, items, batch_size=4)["mlp"]  # [L, N]
    assert scores.shape == (tiny.arch.n_layers, tiny.arch.sites["mlp"].size)
    assert fingerprint(tiny.model) == before and not any(p.grad is not None for p in tiny.model.parameters())
    base = preference(tiny, items).mean().item()
    flat = scores.flatten()
    picks = torch.cat([flat.argsort()[:6], flat.argsort()[-6:]])  # the strongest either way
    estimated, measured = [], []
    for i in picks.tolist():
        layer, index = divmod(i, scores.shape[1])
        off = Intervention(NeuronSet.from_indices(layer, "mlp", [index]), "suppress")
        measured.append(preference(tiny, items, [off]).mean().item() - base)
        estimated.append(flat[i].item())
    rank = torch.tensor(estimated).argsort().argsort().float()
    truth = torch.tensor(measured).argsort().argsort().float()
    assert torch.corrcoef(torch.stack([rank, truth]))[0, 1] >= 0.9
    assert all((e < 0) == (m < 0) for e, m in zip(estimated[:3], measured[:3]))  # the strongest carriers lower it


def test_no_items_is_an_error(tiny):
    with pytest.raises(ValueError, match="no bias items"):
        preference_attribution(tiny, [])
