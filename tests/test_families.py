"""Every adapter family on a tiny random model of that family, saved and loaded back with ``load_model``.

Each model is built once per module (seeded), written as safetensors with the byte tokenizer, and
loaded through the same loader users use. The checks are on real forward passes: sizes from the
config, weight slices inside real parameters, suppressed channels exactly zero, and hooks that agree
with the equivalent weight edit.
"""
import copy
from dataclasses import dataclass

import pytest
import torch
import transformers as T
from torch import nn

from neuronlab import Intervention, NeuronSet, intervene, load_model
from neuronlab.models.tiny import byte_tokenizer
from neuronlab.neurons.sites import SITES, UnsupportedModelError, architecture_of

PROMPT = "Safety neurons, switched off?"


@dataclass(frozen=True)
class Family:
    """A tiny config of one family and the per-layer sizes it must give (mlp, q, k/v, o)."""

    name: str
    config: type
    model: type
    kwargs: dict
    family: str
    sizes: tuple[int, int, int, int]


def _llama_kw(hidden=32, d_ff=64, heads=4, kv_heads=2, **extra):
    return dict(hidden_size=hidden, intermediate_size=d_ff, num_hidden_layers=2, num_attention_heads=heads,
                num_key_value_heads=kv_heads, max_position_embeddings=64, **extra)


FAMILIES = [
    Family("llama", T.LlamaConfig, T.LlamaForCausalLM, _llama_kw(), "llama-like", (64, 32, 16, 32)),
    Family("mistral", T.MistralConfig, T.MistralForCausalLM, _llama_kw(d_ff=96, kv_heads=1),
           "llama-like", (96, 32, 8, 32)),
    Family("qwen2", T.Qwen2Config, T.Qwen2ForCausalLM, _llama_kw(hidden=48, d_ff=80), "llama-like", (80, 48, 24, 48)),
    Family("qwen3", T.Qwen3Config, T.Qwen3ForCausalLM, _llama_kw(head_dim=16), "llama-like", (64, 64, 32, 64)),
    Family("gemma", T.GemmaConfig, T.GemmaForCausalLM, _llama_kw(kv_heads=1, head_dim=16),
           "llama-like", (64, 64, 16, 64)),
    Family("gemma2", T.Gemma2Config, T.Gemma2ForCausalLM, _llama_kw(d_ff=72, heads=2, kv_heads=1, head_dim=24),
           "llama-like", (72, 48, 24, 48)),
    Family("gemma3", T.Gemma3TextConfig, T.Gemma3ForCausalLM, _llama_kw(head_dim=16), "llama-like", (64, 64, 32, 64)),
    Family("phi3", T.Phi3Config, T.Phi3ForCausalLM, _llama_kw(), "phi3-like", (64, 32, 16, 32)),
    Family("gpt2", T.GPT2Config, T.GPT2LMHeadModel,
           dict(n_embd=32, n_inner=96, n_layer=2, n_head=4, n_positions=64), "gpt2-like", (96, 32, 32, 32)),
]


@dataclass
class Case:
    fam: Family
    model: nn.Module
    ids: torch.Tensor  # [1, T]
    plain: torch.Tensor  # logits of the unedited model


def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matmuls are far slower with several intra-op threads (0.25 s vs 2 ms a forward pass here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=FAMILIES, ids=lambda f: f.name)
def case(request, tmp_path_factory) -> Case:
    """The family's tiny model, saved (safetensors + byte tokenizer) and loaded back with load_model."""
    fam: Family = request.param
    tok = byte_tokenizer()
    config = fam.config(vocab_size=len(tok), initializer_range=0.2, bos_token_id=None,
                        eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id, **fam.kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        built = fam.model(config).eval()
    folder = tmp_path_factory.mktemp(fam.name)
    built.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    loaded = load_model(str(folder))
    assert type(loaded.model) is fam.model
    ids = loaded.tokenizer(PROMPT, return_tensors="pt").input_ids
    return Case(fam, loaded.model, ids, _logits(loaded.model, ids))


def _suppress(layer: int, site: str, indices) -> list[Intervention]:
    return [Intervention(NeuronSet.from_indices(layer, site, indices), "suppress")]


def test_architecture_and_sizes(case):
    """The family, layer count and every site's per-layer size come from the config."""
    arch = architecture_of(case.model)
    mlp, q, kv, o = case.fam.sizes
    assert arch.family == case.fam.family
    assert arch.n_layers == 2
    assert arch.neurons_per_layer() == {"mlp": mlp, "attn_q": q, "attn_k": kv, "attn_v": kv, "attn_o": o}
    assert set(arch.sites) == set(SITES)


def test_weight_slices_inside_real_parameters(case):
    """Every slice names a real parameter that holds index offset+size-1; fused q/k/v tile their output."""
    arch = architecture_of(case.model)
    layer = arch.layer(case.model, 0)
    params = dict(layer.named_parameters())
    for site in arch.sites.values():
        assert site.weights, site.name
        for ws in site.weights:
            assert ws.param in params, (site.name, ws.param)
            assert ws.offset + site.size - 1 < params[ws.param].shape[ws.dim], (site.name, ws)
    for name in ("attn_q", "attn_k", "attn_v"):  # weight row, plus the bias entry where there is a bias
        s = arch.sites[name]
        bias = getattr(layer.get_submodule(s.module), "bias", None)
        assert (bias is not None) == (case.fam.name in ("qwen2", "gpt2"))
        expected = {f"{s.module}.weight"} | ({f"{s.module}.bias"} if bias is not None else set())
        assert {ws.param for ws in s.weights} == expected
        assert {ws.offset for ws in s.weights} == {s.offset}
    q, k, v = (arch.sites[s] for s in ("attn_q", "attn_k", "attn_v"))
    if case.fam.family in ("phi3-like", "gpt2-like"):  # fused qkv
        assert q.module == k.module == v.module
        fused = layer.get_submodule(q.module)
        width = fused.weight.shape[1 if case.fam.family == "gpt2-like" else 0]
        assert (q.offset, k.offset, v.offset, v.offset + v.size) == (0, q.size, q.size + k.size, width)
    if case.fam.family == "phi3-like":  # gate rows, then up rows
        offsets = sorted(ws.offset for ws in arch.sites["mlp"].weights if ws.param == "mlp.gate_up_proj.weight")
        assert offsets == [0, arch.sites["mlp"].size]
        assert layer.mlp.gate_up_proj.out_features == 2 * arch.sites["mlp"].size


def _capture(module: nn.Module, port: str, into: list):
    if port == "input":
        return module.register_forward_pre_hook(lambda m, args: into.append(args[0].detach().clone()))
    return module.register_forward_hook(lambda m, args, out: into.append(out.detach().clone()))


@pytest.mark.parametrize("site", SITES)
def test_suppress_zeroes_exactly_that_channel(case, site):
    """Suppressing neurons 1 and size-1 of layer 0 zeroes exactly those channels of the hooked tensor."""
    arch = architecture_of(case.model)
    s = arch.sites[site]
    module = arch.module(case.model, 0, site)
    indices = [1, s.size - 1]
    plain, edited = [], []
    handle = _capture(module, s.port, plain)
    try:
        _logits(case.model, case.ids)
    finally:
        handle.remove()
    with intervene(case.model, _suppress(0, site, indices)):
        handle = _capture(module, s.port, edited)  # registered after intervene's hook: sees its edit
        try:
            logits = _logits(case.model, case.ids)
        finally:
            handle.remove()
    (before,), (after,) = plain, edited
    pos = [s.offset + i for i in indices]
    keep = torch.ones(before.shape[-1], dtype=torch.bool)
    keep[pos] = False
    assert before[..., pos].abs().min() > 0
    assert torch.equal(after[..., pos], torch.zeros_like(after[..., pos]))
    assert torch.equal(after[..., keep], before[..., keep])
    assert (logits - case.plain).abs().max() > 1e-4


def _zero_weights(model: nn.Module, fam: Family, site: str, i: int) -> None:
    """The weight edit equivalent to suppressing neuron i of layer 0 (written per family, not from the adapter)."""
    layer = architecture_of(model).layer(model, 0)
    if fam.family == "gpt2-like":  # Conv1D weights are [in, out]
        hidden = fam.kwargs["n_embd"]
        if site == "mlp":
            layer.mlp.c_proj.weight[i, :] = 0
        elif site == "attn_o":
            layer.attn.c_proj.weight[i, :] = 0
        else:
            layer.attn.c_attn.weight[:, 2 * hidden + i] = 0
            layer.attn.c_attn.bias[2 * hidden + i] = 0
        return
    if site == "mlp":
        layer.mlp.down_proj.weight[:, i] = 0
    elif site == "attn_o":
        layer.self_attn.o_proj.weight[:, i] = 0
    elif fam.family == "phi3-like":
        _, q, kv, _ = fam.sizes
        layer.self_attn.qkv_proj.weight[q + kv + i] = 0
    else:
        v_proj = layer.self_attn.v_proj
        v_proj.weight[i] = 0
        if v_proj.bias is not None:
            v_proj.bias[i] = 0


@pytest.mark.parametrize("site", ["mlp", "attn_o", "attn_v"])
def test_suppress_equals_weight_edit(case, site):
    """Suppressing neuron i (hook) gives the logits of a copy whose weights for neuron i are zeroed."""
    size = architecture_of(case.model).sites[site].size
    for i in (2, size - 1):
        edited = copy.deepcopy(case.model)
        with torch.no_grad():
            _zero_weights(edited, case.fam, site, i)
        expected = _logits(edited, case.ids)
        with intervene(case.model, _suppress(0, site, [i])):
            got = _logits(case.model, case.ids)
        assert (expected - case.plain).abs().max() > 1e-4, "the weight edit must change the logits"
        assert torch.allclose(got, expected, atol=1e-5), (site, i, (got - expected).abs().max().item())


def test_identity_interventions_are_bit_identical(case):
    """activate x1 on every site of every layer, and an empty intervention list, leave logits bit-identical."""
    arch = architecture_of(case.model)
    everything = NeuronSet((layer, site, i) for layer in range(arch.n_layers) for site in arch.sites
                           for i in (0, arch.sites[site].size - 1))
    with intervene(case.model, [Intervention(everything, "activate", 1.0)]):
        assert torch.equal(_logits(case.model, case.ids), case.plain)
    with intervene(case.model, []):
        assert torch.equal(_logits(case.model, case.ids), case.plain)
    assert torch.equal(_logits(case.model, case.ids), case.plain)


class _UnknownBlock(nn.Module):
    """A decoder-ish layer with an MLP, but no projections any adapter knows."""

    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
        self.attn = nn.MultiheadAttention(8, 2)


class _UnknownModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = T.PretrainedConfig(num_hidden_layers=2)
        self.layers = nn.ModuleList([_UnknownBlock(), _UnknownBlock()])


def _tiny_bert():
    config = T.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, is_decoder=True)
    return T.BertLMHeadModel(config)


@pytest.mark.parametrize("make", [_tiny_bert, _UnknownModel, lambda: nn.Linear(4, 4)],
                         ids=["bert", "unknown-layer", "no-config"])
def test_unsupported_layout_names_supported_families(make):
    """A layout no adapter knows raises UnsupportedModelError that names the supported families."""
    with pytest.raises(UnsupportedModelError) as err:
        architecture_of(make())
    for family in ("Llama", "Mistral", "Qwen", "Gemma", "Phi-3", "GPT-2"):
        assert family in str(err.value)
