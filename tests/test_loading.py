"""load_model: one clear ModelSpecError per bad spec; local folders, dtypes, remote code, dispatched models."""
import dataclasses
import os
import pickle

import accelerate
import huggingface_hub.constants
import numpy as np
import pytest
import torch
import transformers
from gguf import GGUFWriter
from transformers import BertConfig, BertModel, LlamaForCausalLM, PreTrainedModel

import neuronlab.models.builtins
from neuronlab import Intervention, ModelSpecError, NeuronSet, fingerprint, intervene, load_model
from neuronlab.models.generation import Sampling, generate
from neuronlab.models.tiny import byte_tokenizer, tiny_llama_config

# every block on the CPU, as accelerate dispatches a model spread over devices (device="auto")
DEVICE_MAP = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu", "model.norm": "cpu",
              "model.rotary_emb": "cpu", "lm_head": "cpu"}


def save_tiny(folder, model: PreTrainedModel) -> str:
    """Save ``model`` (safetensors) with the byte tokenizer; the folder as a spec."""
    model.save_pretrained(folder)  # safetensors
    byte_tokenizer().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """(folder, model): a random 2-layer Llama saved with safetensors and a byte tokenizer."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(len(byte_tokenizer()), layers=2)).eval()
    return save_tiny(tmp_path_factory.mktemp("tiny"), model), model


def spec_error(spec: str, *words: str, **kwargs) -> str:
    """The ModelSpecError message for ``spec``, checked to contain every word (case-insensitive)."""
    with pytest.raises(ModelSpecError) as err:
        load_model(spec, **kwargs)
    message = str(err.value)
    missing = [w for w in words if w.lower() not in message.lower()]
    assert not missing, f"{missing} not in: {message}"
    return message


@pytest.mark.parametrize("spec, words", [
    ("./nope", ("./nope", "no such folder or file", "accepted", "safetensors", ".gguf", "hub id")),
    ("/no/such/dir", ("/no/such/dir", "no such folder or file", "accepted")),
    ("~/no-such-neuronlab-model", ("no such folder or file", "accepted")),
    ("/no/such/model.gguf", ("no such GGUF file", "accepted")),
])
def test_missing_paths(spec, words):
    spec_error(spec, *words)


def test_missing_folder(tmp_path):
    spec_error(str(tmp_path / "missing"), "no such folder or file", "accepted")


def test_folder_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    spec_error(str(tmp_path), "no config.json", "accepted")


class _Canary:
    """Unpickling this creates the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_pickle_weights_are_never_unpickled(tmp_path):
    tiny_llama_config(300, layers=2).save_pretrained(tmp_path)
    canary = tmp_path / "unpickled"
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(_Canary(canary)))
    spec_error(str(tmp_path), "pytorch_model.bin", "pickle", "safetensors", "arbitrary code")
    assert not canary.exists()
    pickle.loads((tmp_path / "pytorch_model.bin").read_bytes())  # the canary works
    assert canary.exists()


def test_encoder_is_not_a_causal_lm(tmp_path):
    config = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    assert config.is_decoder is False
    save_tiny(tmp_path, BertModel(config))
    spec_error(str(tmp_path), "'bert'", "not a causal language model", "decoder")


def test_gguf_of_unsupported_architecture(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "encoder.gguf"
    writer = GGUFWriter(str(path), "bert")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    spec_error(str(path), "GGUF architecture 'bert'", "not supported", "supported:", "llama", "qwen2", "gemma3")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"GGUF\x03\x00\x00\x00" + os.urandom(64)],
                         ids=["random", "empty", "corrupt-header"])
def test_file_that_is_not_a_gguf(tmp_path, monkeypatch, content):
    monkeypatch.setenv("NEURONLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    spec_error(str(path), "model.gguf", "not a readable GGUF file")


def test_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a model")
    spec_error(str(path), "notes.txt", "not a .gguf", "accepted")


@pytest.mark.parametrize("kwargs, words", [
    ({"dtype": "float8"}, ("unknown dtype 'float8'", "float32", "bfloat16", "float16")),
    ({"device": "tpu"}, ("unknown device 'tpu'", "cpu", "cuda", "auto")),
    pytest.param({"device": "cuda"}, ("no CUDA GPU", "cpu or auto"),
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")),
])
def test_bad_dtype_or_device(tiny_folder, kwargs, words):
    spec_error(tiny_folder[0], *words, **kwargs)


def test_builtin_with_missing_patch(monkeypatch, tmp_path):
    entry = neuronlab.models.builtins.BUILTINS["demo-donor"]
    monkeypatch.setitem(neuronlab.models.builtins.BUILTINS, "demo-donor",
                        dataclasses.replace(entry, patches=(tmp_path / "gone.safetensors",)))
    spec_error("demo-donor", "demo-donor", "not built", "demo-target")


def test_builtin_patches_apply_in_order(monkeypatch, tmp_path, tiny):
    """A built-in with two shipped patches gets both, the second written over the first (gemma-donor's shape:
    base model + chat patch + refusal patch)."""
    from neuronlab.neurons.patches import Patch, extract_patch

    both, one = NeuronSet([(1, "mlp", 3), (2, "mlp", 5)]), NeuronSet([(1, "mlp", 3)])
    base = extract_patch(tiny, both)
    first = Patch(both, {k: v + 1 for k, v in base.tensors.items()}, {})
    second = Patch(one, {k: v + 2 for k, v in extract_patch(tiny, one).tensors.items()}, {})
    paths = (first.save(tmp_path / "first.safetensors"), second.save(tmp_path / "second.safetensors"))
    entry = neuronlab.models.builtins.BUILTINS["tiny-llama"]
    monkeypatch.setitem(neuronlab.models.builtins.BUILTINS, "tiny-llama", dataclasses.replace(entry, patches=paths))
    lm = load_model("tiny-llama")
    assert lm.info.fingerprint == fingerprint(lm.model) != tiny.info.fingerprint
    for key, value in extract_patch(lm, both).tensors.items():
        assert torch.equal(value, base.tensors[key] + (2 if key.startswith("1.") else 1)), key


def test_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    spec_error("someorg/some-model", "someorg/some-model", "not in the local Hugging Face cache", "HF_HUB_OFFLINE",
               "built-in name")


def test_folder_round_trip(tiny_folder, tmp_path):
    folder, model = tiny_folder
    lm = load_model(folder)
    info = lm.info
    assert (info.spec, info.architecture, info.model_type, info.family) == (
        folder, "LlamaForCausalLM", "llama", "llama-like")
    assert info.n_layers == 2 and info.neurons_per_layer["mlp"] == 128
    assert info.n_params == sum(p.numel() for p in model.parameters())
    assert (info.dtype, info.device, info.chat_template) == ("float32", "cpu", True)
    assert len(info.fingerprint) == 16 and int(info.fingerprint, 16) >= 0
    for name, tensor in model.state_dict().items():
        assert torch.equal(lm.model.state_dict()[name], tensor), name
    assert info.fingerprint == fingerprint(model) == load_model(folder).info.fingerprint

    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[0, 0] += 1e-3
    try:
        edited = load_model(save_tiny(tmp_path, model)).info.fingerprint
    finally:
        with torch.no_grad():
            model.model.layers[1].mlp.down_proj.weight[0, 0] -= 1e-3
    assert edited != info.fingerprint


def test_bfloat16(tiny_folder):
    lm = load_model(tiny_folder[0], dtype="bfloat16")
    assert lm.info.dtype == "bfloat16"
    assert {p.dtype for p in lm.model.parameters()} == {torch.bfloat16}


def test_trust_remote_code_defaults_to_false(tiny_folder, monkeypatch):
    calls = []
    original = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        calls.append(kwargs["trust_remote_code"])
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    load_model(tiny_folder[0])
    load_model(tiny_folder[0], trust_remote_code=True)
    assert calls == [False, True]


def test_intervention_on_dispatched_model(tiny_folder):
    """transformers attaches no accelerate hooks for a one-device map, so dispatch_model forces them."""
    plain = load_model(tiny_folder[0])
    lm = load_model(tiny_folder[0], device_map=DEVICE_MAP)
    accelerate.dispatch_model(lm.model, device_map=DEVICE_MAP, main_device="cpu", force_hooks=True)
    assert all(hasattr(lm.model.get_submodule(name), "_hf_hook") for name in DEVICE_MAP)
    assert hasattr(lm.model.model.layers[0].mlp.down_proj, "_hf_hook")

    def hook_counts():
        return [(len(m._forward_pre_hooks), len(m._forward_hooks)) for m in lm.model.modules()]

    suppress = Intervention(NeuronSet.from_indices(0, "mlp", [3, 7]), "suppress")
    ids = lm.tokenizer("hello world", return_tensors="pt").input_ids
    down = lm.arch.module(lm.model, 0, "mlp")
    before, seen = hook_counts(), []
    with torch.no_grad():
        base = lm.model(ids).logits
        with intervene(lm, suppress):
            capture = down.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
            edited = lm.model(ids).logits
            capture.remove()
        with intervene(plain, suppress):
            reference = plain.model(ids).logits
        after = lm.model(ids).logits

    (x,) = seen  # [1, seq, 128]
    assert torch.all(x[..., [3, 7]] == 0)
    assert torch.count_nonzero(x) == x.numel() - 2 * x.shape[1]
    assert not torch.allclose(edited, base)
    torch.testing.assert_close(edited, reference)
    assert torch.equal(after, base)
    assert hook_counts() == before
    assert hasattr(down, "_hf_hook")


def test_builtin_tiny_llama(tiny):
    assert (tiny.info.n_layers, tiny.info.neurons_per_layer["mlp"]) == (4, 128)
    assert isinstance(generate(tiny, "hi", sampling=Sampling(max_new_tokens=5)), str)


def test_demo_target(smol):
    info = smol.info
    assert (info.n_layers, info.neurons_per_layer["mlp"], info.chat_template) == (30, 1536, True)
    reply = generate(smol, "What is the capital of France?", sampling=Sampling(max_new_tokens=20))
    assert "Paris" in reply, reply


def test_demo_donor_is_demo_target_plus_its_patch(smol, donor):
    """The donor holds the shipped patch's values, and writing demo-target's values back into the patch's
    neuron slices gives demo-target bit for bit: nothing else differs."""
    from neuronlab.neurons.patches import Patch, extract_patch, patched

    shipped = Patch.load(neuronlab.models.builtins.BUILTINS["demo-donor"].patches[0])
    assert shipped.meta["target_fingerprint"] == smol.info.fingerprint != donor.info.fingerprint
    assert donor.info.fingerprint == fingerprint(donor.model)
    got = extract_patch(donor, shipped.neurons)
    assert all(torch.equal(got.tensors[k], v) for k, v in shipped.tensors.items())
    with patched(donor, extract_patch(smol, shipped.neurons), check_fingerprint=False):
        assert fingerprint(donor.model) == smol.info.fingerprint
    assert fingerprint(donor.model) == donor.info.fingerprint
