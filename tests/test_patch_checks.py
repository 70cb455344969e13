"""Patches from outside are checked: finite weights, the model they were made for, and --force / "apply anyway"
for one made for another model or for none."""
import math

import pytest
import torch

from neuronlab import NeuronSet
from neuronlab.cli import main
from neuronlab.neurons.patches import Patch, PatchError, apply_patch, check_patch, extract_patch, forced
from tests.support.apptest import app, page, run

NEURONS = NeuronSet((0, "mlp", i) for i in range(4))


def nameless(lm) -> Patch:
    """A patch of ``lm``'s own weights that does not say which model it was made for."""
    return extract_patch(lm, NEURONS)


def test_a_patch_with_nan_or_inf_weights_is_refused_even_when_forced(tiny):
    patch = extract_patch(tiny, NEURONS, target_fingerprint=tiny.info.fingerprint)
    key = next(iter(patch.tensors))
    for bad in (math.nan, math.inf):
        broken = Patch(patch.neurons, {**patch.tensors, key: patch.tensors[key].clone().fill_(bad)}, patch.meta)
        for force in (False, True):
            with pytest.raises(PatchError, match="NaN or infinite"):
                check_patch(tiny, broken, force=force)
        with pytest.raises(PatchError, match="NaN or infinite"):
            apply_patch(tiny, broken)


def test_a_patch_naming_no_model_needs_force_and_is_then_made_for_this_one(tiny):
    with pytest.raises(PatchError, match="no target fingerprint"):
        check_patch(tiny, nameless(tiny))
    accepted = forced(tiny, nameless(tiny))
    assert accepted.meta["target_fingerprint"] == tiny.info.fingerprint and accepted.meta["forced"]
    assert check_patch(tiny, accepted) is accepted


def test_chat_refuses_a_nameless_patch_unless_forced(tiny, tmp_path, capsys):
    path = nameless(tiny).save(tmp_path / "p.safetensors")
    args = ["chat", "--model", "tiny-llama", "--patch", str(path), "--prompt", "hi", "--max-new-tokens", "2",
            "--no-stream"]
    assert main(args) == 2 and "no target fingerprint" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0 and "warning: --force" in capsys.readouterr().err


def test_the_app_applies_a_nameless_upload_only_when_told_to(tiny):
    at = page(app("tiny-llama"), "transfer")
    upload = ("p.safetensors", nameless(tiny).to_bytes(), "application/octet-stream")
    run(at.file_uploader(key="tf_upload").set_value(upload))
    assert any("no target fingerprint" in e.value for e in at.error)
    run(at.checkbox(key="tf_up_force").check())
    assert not at.error and any("applied anyway" in c.value for c in at.caption)
    assert torch.equal(at.session_state["tf_uploaded"][1].tensors[next(iter(nameless(tiny).tensors))],
                       next(iter(nameless(tiny).tensors.values())))
