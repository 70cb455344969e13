"""The built-in bias pair (demo-target, bias-donor): the shipped patch is what its documented command makes, and
it moves demo-target's held-out stereotype score toward 50% where random neurons turned down alike do not."""
import pytest
import torch

from neuronlab import Intervention
from neuronlab.data.bias import bundled_bias
from neuronlab.evaluation.bias import bias_scores
from neuronlab.models.builtins import BUILTINS
from neuronlab.neurons.patches import Patch, patched
from neuronlab.neurons.sets import random_like
from neuronlab.training.bias_donor import BiasDonorConfig, make_bias_donor

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def shipped():
    return Patch.load(BUILTINS["bias-donor"].patches[-1])


def test_the_shipped_donor_is_what_make_bias_donor_makes(smol, shipped):
    """`python -m neuronlab make-bias-donor --out assets/donors/bias-donor.safetensors` (the defaults)."""
    made = make_bias_donor(smol, list(bundled_bias("en", "scan")), BiasDonorConfig())
    assert set(made.neurons) == set(shipped.neurons) and len(shipped.neurons) == BiasDonorConfig.count
    assert made.meta["target_fingerprint"] == shipped.meta["target_fingerprint"] == smol.info.fingerprint
    for key, values in shipped.tensors.items():
        assert torch.allclose(made.tensors[key], values, atol=1e-6), key


def test_the_donor_prefers_the_stereotype_less_and_random_neurons_turned_down_alike_do_not(smol, shipped):
    heldout = list(bundled_bias("en", "heldout"))
    plain = bias_scores(smol, heldout)["overall"]["stereotype_score"]
    with patched(smol, shipped):
        donor = bias_scores(smol, heldout)["overall"]["stereotype_score"]
    control = Intervention(random_like(shipped.neurons, smol.arch, 0), "activate", shipped.meta["scale"])
    random = bias_scores(smol, heldout, [control])["overall"]["stereotype_score"]
    assert plain > 0.5 and abs(plain - 0.5) - abs(donor - 0.5) >= 0.05  # measured: 66.4% → 55.2%
    assert abs(abs(plain - 0.5) - abs(random - 0.5)) < 0.03
