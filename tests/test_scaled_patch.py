"""``scaled_patch``: a neuron's contribution scaled in the weights equals the same scaling as an intervention."""
import pytest
import torch

from neuronlab import Intervention, NeuronSet
from neuronlab.neurons.interventions import intervene
from neuronlab.neurons.patches import Patch, fingerprint, patched, scaled_patch


@pytest.mark.parametrize("site", ["mlp", "attn_v", "attn_o"])
@pytest.mark.parametrize("scale", [0.0, 0.5, 1.5])
def test_a_scaled_patch_is_the_activate_intervention_in_the_weights(tiny, site, scale, tmp_path):
    neurons = NeuronSet([(0, site, 3), (2, site, 5), (2, site, 9)])
    ids = tiny.tokenizer(["The cat sat on the mat.", "A second, longer one."], return_tensors="pt", padding=True)
    before = fingerprint(tiny.model)
    patch = Patch.load(scaled_patch(tiny, neurons, scale, kind="other").save(tmp_path / "scaled.safetensors"))
    with torch.inference_mode():
        plain = tiny.model(**ids).logits
        with intervene(tiny.model, Intervention(neurons, "activate", scale)):
            wanted = tiny.model(**ids).logits
        with patched(tiny, patch):
            got = tiny.model(**ids).logits
    assert fingerprint(tiny.model) == before  # the model ends as loaded
    assert torch.allclose(got, wanted, atol=1e-5) and not torch.allclose(got, plain, atol=1e-4)
    assert patch.meta["scale"] == scale and patch.meta["target_fingerprint"] == before
