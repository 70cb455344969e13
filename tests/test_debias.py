"""Bias donors: training chosen neurons to prefer neither fill lowers the squared preference, changes only
those neurons, leaves the model as loaded and is reproducible; the goal "stereotype" (a more biased target)
raises the preference instead."""
import pytest
import torch

from neuronlab import NeuronSet
from neuronlab.data.bias import bundled_bias
from neuronlab.neurons.patches import fingerprint, patched
from neuronlab.training.debias import (
    DebiasConfig,
    gradient_scores,
    item_spans,
    mean_preference,
    squared_preference,
    train_debiased,
)

NEURONS = NeuronSet([(layer, "mlp", i) for layer in (1, 2) for i in range(0, 128, 4)])
CONFIG = DebiasConfig(steps=12, lr=3e-2, batch_size=4, top_k=16, keep_weight=0.1)


def items():
    return list(bundled_bias("en", "scan"))[:8]


def pref2(lm) -> float:
    with torch.no_grad():
        return squared_preference(lm, item_spans(lm, items())).item()


def test_training_lowers_the_squared_preference_and_restores_the_model(tiny):
    fp, before = fingerprint(tiny.model), pref2(tiny)
    steps = []
    patch = train_debiased(tiny, items(), NEURONS, CONFIG, progress=lambda f, m: steps.append(f))
    assert fingerprint(tiny.model) == fp  # restored bit for bit
    assert steps[-1] == 1 and len(steps) == CONFIG.steps
    assert patch.meta["target_fingerprint"] == fp and patch.meta["steps"] == 12 and patch.meta["method"] == "debias"
    assert patch.meta["seed"] == 0 and patch.meta["lr"] == 3e-2 and patch.meta["langs"] == ["en"]
    assert patch.meta["goal"] == "neutral" and "margin" not in patch.meta
    with patched(tiny, patch):
        assert pref2(tiny) < 0.5 * before
    assert pref2(tiny) == before


def test_only_the_chosen_neurons_change(tiny):
    state = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    patch = train_debiased(tiny, items(), NEURONS, CONFIG)
    assert patch.neurons == NEURONS
    with patched(tiny, patch):
        after = tiny.model.state_dict()
        changed = {k for k, v in after.items() if not torch.equal(v, state[k])}
        assert changed and changed <= {f"model.layers.{layer}.mlp.{p}_proj.weight" for layer in (1, 2)
                                       for p in ("gate", "up", "down")}
        untouched = [i for i in range(128) if i % 4]
        for layer in (1, 2):
            gate, down = f"model.layers.{layer}.mlp.gate_proj.weight", f"model.layers.{layer}.mlp.down_proj.weight"
            assert torch.equal(after[gate][untouched], state[gate][untouched])
            assert torch.equal(after[down][:, untouched], state[down][:, untouched])


def test_seeded_runs_give_identical_patches(tiny):
    config = DebiasConfig(steps=4, lr=1e-2, batch_size=3, top_k=8)
    a, b = (train_debiased(tiny, items(), NEURONS, config) for _ in range(2))
    assert a.tensors.keys() == b.tensors.keys()
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    c = train_debiased(tiny, items(), NEURONS, DebiasConfig(steps=4, lr=1e-2, batch_size=3, top_k=8, seed=1))
    assert any(not torch.equal(a.tensors[k], c.tensors[k]) for k in a.tensors)


def test_gradient_scores_rank_every_mlp_neuron(tiny):
    fp, flags = fingerprint(tiny.model), [p.requires_grad for p in tiny.model.parameters()]
    scores = gradient_scores(tiny, items()[:4])
    assert scores["mlp"].shape == (4, 128) and (scores["mlp"] >= 0).all() and scores["mlp"].sum() > 0
    assert fingerprint(tiny.model) == fp and [p.requires_grad for p in tiny.model.parameters()] == flags
    assert len(scores.top(count=10)) == 10


BIASING = DebiasConfig(steps=12, lr=3e-2, batch_size=4, top_k=16, keep_weight=0.1, goal="stereotype", margin=1.0)


def test_the_stereotype_goal_raises_the_preference_and_restores_the_model(tiny):
    fp, spans = fingerprint(tiny.model), item_spans(tiny, items())
    before = mean_preference(tiny, spans)
    patch = train_debiased(tiny, items(), NEURONS, BIASING)
    assert fingerprint(tiny.model) == fp and mean_preference(tiny, spans) == before  # restored bit for bit
    assert patch.meta["goal"] == "stereotype" and patch.meta["margin"] == 1.0 and "softplus" in patch.meta["recipe"]
    with patched(tiny, patch):
        assert mean_preference(tiny, spans) > before + 0.1
    again = train_debiased(tiny, items(), NEURONS, BIASING)  # seeded
    assert all(torch.equal(patch.tensors[k], again.tensors[k]) for k in patch.tensors)
    scores = gradient_scores(tiny, items()[:4], config=BIASING)
    assert scores["mlp"].shape == (4, 128) and scores["mlp"].sum() > 0


def test_an_unknown_goal_is_refused():
    with pytest.raises(ValueError, match="goal"):
        DebiasConfig(goal="unbiased")
