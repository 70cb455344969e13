"""A checkpoint with missing weights is an error naming them, not a model with random weights."""
import pytest
from safetensors.torch import load_file, save_file

from neuronlab import ModelSpecError, load_model


def test_a_checkpoint_missing_a_layer_s_weights_is_refused_by_name(tiny, tmp_path):
    folder = tmp_path / "model"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    assert load_model(str(folder)).info.fingerprint == tiny.info.fingerprint  # whole: it loads as it was
    weights = load_file(folder / "model.safetensors")
    gone = next(k for k in weights if ".1.mlp.down_proj" in k)
    save_file({k: v for k, v in weights.items() if k != gone}, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelSpecError, match=f"lacks 1 weight.*{gone}"):
        load_model(str(folder))
