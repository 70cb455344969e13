"""Patches from outside are checked: finite weights, the model they were made for, and --force / "apply anyway"
for one made for another model or for none."""
import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save

from neuronlab import NeuronSet
from neuronlab.cli import main
from neuronlab.experiments import patch_effect
from neuronlab.neurons.patches import (
    FORMAT,
    META_TYPES,
    NEURON_PREFIX,
    PATCH_KINDS,
    Patch,
    PatchError,
    apply_patch,
    check_patch,
    extract_patch,
    forced,
)
from neuronlab.training.expansion import RECIPE
from tests.support.apptest import app, page, run
from tests.support.messages import assert_clear
from webui.widgets import patch_label

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


# ---- any metadata --------------------------------------------------------------------------------
META_KEYS = st.sampled_from([*META_TYPES, "recipe", "train_config", "langs", "validation", "limit", "x"])
VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
                      | st.sampled_from([RECIPE, "transfer", "revert", "add", "delete", "LlamaForCausalLM"]),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(META_KEYS, inner, max_size=4),
                      max_leaves=12)
META_TEXT = (st.dictionaries(META_KEYS, VALUES, max_size=5).map(json.dumps) | VALUES.map(json.dumps) | st.text(max_size=20) | st.sampled_from(["NaN", "1" * 5000, "[" * 50_000, ""])
             | st.integers(1, 3000).map(lambda depth: '{"source": ' + "[" * depth + "]" * depth + "}"))
METADATA = st.dictionaries(st.sampled_from(["format", "meta", "x"]) | st.text(max_size=5),
                           st.sampled_from([FORMAT, "{}"]) | META_TEXT, max_size=3)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(metadata=st.fixed_dictionaries({"format": st.just(FORMAT), "meta": META_TEXT}) | METADATA)
def test_any_metadata_gives_a_usable_patch_or_a_patch_error(metadata, tiny):
    """Safetensors metadata (strings to strings) of any shape: a patch whose metadata NeuronLab reads back has the
    types it reads, or one PatchError naming the file, from reading, checking, forcing and evaluating alike."""
    content = save({**extract_patch(tiny, NEURONS).tensors, **NEURONS.to_tensors(NEURON_PREFIX)}, metadata=metadata)
    try:
        patch = Patch.from_bytes(content, "fuzz.safetensors")
    except PatchError as e:
        assert str(e).count("fuzz.safetensors") == 1 and "\n" not in str(e), str(e)
        return
    assert patch.kind in PATCH_KINDS and isinstance(patch_label(patch), str)
    for check in (lambda: check_patch(tiny, patch), lambda: forced(tiny, patch), lambda: patch_effect(tiny, patch)):
        try:
            check()
        except PatchError as e:
            assert "\n" not in str(e) and str(e), str(e)


@pytest.mark.parametrize("meta, words", [
    ("[1, 2]", "its metadata is an array, not a JSON object"),
    ("7", "its metadata is a number, not a JSON object"),
    ('"text"', "its metadata is a string, not a JSON object"),
    ("[" * 100_000, "its metadata is not valid JSON"),
    ("{\"values\": " + "9" * 5000 + "}", "its metadata is not valid JSON"),
    ('{"target_fingerprint": ["abc"]}', "its metadata's 'target_fingerprint' is an array, not text"),
    ('{"architecture": 5}', "its metadata's 'architecture' is a number, not text"),
    ('{"source": {"a": 1}}', "its metadata's 'source' is an object, not text"),
    ('{"direction": ["add"]}', "its metadata's 'direction' is an array, not text"),
    ('{"neurons": 2.5}', "its metadata's 'neurons' is a number, not a whole number"),
    ('{"values": true}', "its metadata's 'values' is true/false, not a whole number"),
    ('{"share_of_parameters": NaN}', "its metadata's 'share_of_parameters' is a number, not a number"),
])
def test_metadata_of_the_wrong_shape_is_named(meta, words, tiny):
    content = save(extract_patch(tiny, NEURONS).tensors | NEURONS.to_tensors(NEURON_PREFIX),
                   metadata={"format": FORMAT, "meta": meta})
    with pytest.raises(PatchError) as info:
        Patch.from_bytes(content, "odd.safetensors")
    assert_clear(info.value, "odd.safetensors", "a damaged NeuronLab patch", words)


def test_a_damaged_training_recipe_is_a_patch_error_not_a_crash(tiny):
    patch = Patch(NEURONS, extract_patch(tiny, NEURONS).tensors, {"recipe": RECIPE, "train_config": {"steps": "x", "nope": 1}})
    with pytest.raises(PatchError, match="training recipe is damaged.*--controls 0"):
        patch_effect(tiny, patch)
