"""Where neurons live: one adapter per model family, found from the model's modules, not its name.

A *site* is a kind of neuron inside a decoder layer:
- ``mlp``: channel i of the input to the MLP's down projection (act(gate x) * up x); its weights are
  row i of gate/up and column i of down.
- ``attn_q`` / ``attn_k`` / ``attn_v``: output channel i of the query/key/value projection (row i).
- ``attn_o``: input channel i of the attention output projection (column i).

Each site names the module whose input or output carries the neuron (hooks go there) and the weight
slices that belong to neuron i (patches copy those).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

from torch import nn

from neuronlab.errors import NeuronLabError

SITES = ("mlp", "attn_q", "attn_k", "attn_v", "attn_o")
ATTN_SITES = ("attn_q", "attn_k", "attn_v", "attn_o")


class UnsupportedModelError(NeuronLabError):
    """The model's layout matches none of the known families."""


@dataclass(frozen=True)
class WeightSlice:
    """Neuron i's weights in one parameter: index ``offset + i`` along ``dim`` of ``param``."""

    param: str  # dotted path relative to the decoder layer, e.g. "mlp.gate_proj.weight"
    dim: int
    offset: int = 0


@dataclass(frozen=True)
class Site:
    """One kind of neuron: the channels ``offset .. offset+size`` of a module's input or output."""

    name: str
    module: str  # dotted path relative to the decoder layer
    port: str  # "input" (forward pre-hook) or "output" (forward hook)
    offset: int
    size: int  # neurons per layer
    weights: tuple[WeightSlice, ...]


@dataclass(frozen=True)
class Architecture:
    """The adapter for one model: its family, where its decoder layers are, and its sites."""

    family: str
    layers_path: str
    n_layers: int
    sites: dict[str, Site]

    def layer(self, model: nn.Module, layer: int) -> nn.Module:
        return model.get_submodule(self.layers_path)[layer]

    def module(self, model: nn.Module, layer: int, site: str) -> nn.Module:
        return self.layer(model, layer).get_submodule(self.sites[site].module)

    def neurons_per_layer(self) -> dict[str, int]:
        return {name: s.size for name, s in self.sites.items()}


def _has(module: nn.Module, *paths: str) -> bool:
    for path in paths:
        try:
            module.get_submodule(path)
        except AttributeError:
            return False
    return True


def _rows(layer: nn.Module, proj: str, offset: int = 0) -> tuple[WeightSlice, ...]:
    """Output channel slices of an nn.Linear (weight row, plus bias entry where there is a bias)."""
    out = [WeightSlice(f"{proj}.weight", 0, offset)]
    if getattr(layer.get_submodule(proj), "bias", None) is not None:
        out.append(WeightSlice(f"{proj}.bias", 0, offset))
    return tuple(out)


def _conv1d_outputs(layer: nn.Module, proj: str, offset: int = 0) -> tuple[WeightSlice, ...]:
    """Output channel slices of a GPT-2 Conv1D, whose weight is stored [in, out]."""
    return (WeightSlice(f"{proj}.weight", 1, offset), WeightSlice(f"{proj}.bias", 0, offset))


def _head_sizes(config, hidden: int) -> tuple[int, int]:
    """(query width, key/value width) of one attention layer, from the config."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return heads * head_dim, kv_heads * head_dim


def _llama_like(layer: nn.Module, config) -> dict[str, Site] | None:
    """Llama, Mistral, Qwen2/Qwen3, Gemma/Gemma2/Gemma3: separate gate/up/down and q/k/v/o."""
    if not _has(layer, "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
                "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"):
        return None
    mlp, attn = layer.mlp, layer.self_attn
    sites = {"mlp": Site("mlp", "mlp.down_proj", "input", 0, mlp.down_proj.in_features,
                         _rows(layer, "mlp.gate_proj") + _rows(layer, "mlp.up_proj")
                         + (WeightSlice("mlp.down_proj.weight", 1),))}
    for site, proj in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj")):
        path = f"self_attn.{proj}"
        sites[site] = Site(site, path, "output", 0, getattr(attn, proj).out_features, _rows(layer, path))
    sites["attn_o"] = Site("attn_o", "self_attn.o_proj", "input", 0, attn.o_proj.in_features,
                           (WeightSlice("self_attn.o_proj.weight", 1),))
    return sites


def _phi3_like(layer: nn.Module, config) -> dict[str, Site] | None:
    """Phi-3: fused gate_up_proj (gate rows first, then up rows) and fused qkv_proj."""
    if not _has(layer, "mlp.gate_up_proj", "mlp.down_proj", "self_attn.qkv_proj", "self_attn.o_proj"):
        return None
    d_ff = layer.mlp.down_proj.in_features
    q, kv = _head_sizes(config, layer.self_attn.o_proj.out_features)
    sites = {"mlp": Site("mlp", "mlp.down_proj", "input", 0, d_ff,
                         _rows(layer, "mlp.gate_up_proj", 0) + _rows(layer, "mlp.gate_up_proj", d_ff)
                         + (WeightSlice("mlp.down_proj.weight", 1),))}
    for site, offset, size in (("attn_q", 0, q), ("attn_k", q, kv), ("attn_v", q + kv, kv)):
        sites[site] = Site(site, "self_attn.qkv_proj", "output", offset, size,
                           _rows(layer, "self_attn.qkv_proj", offset))
    sites["attn_o"] = Site("attn_o", "self_attn.o_proj", "input", 0, q, (WeightSlice("self_attn.o_proj.weight", 1),))
    return sites


def _gpt2_like(layer: nn.Module, config) -> dict[str, Site] | None:
    """GPT-2: Conv1D c_fc/c_proj MLP and fused c_attn (q, k, v blocks of width hidden)."""
    if not _has(layer, "mlp.c_fc", "mlp.c_proj", "attn.c_attn", "attn.c_proj"):
        return None
    d_ff = layer.mlp.c_fc.weight.shape[1]
    hidden = layer.attn.c_proj.weight.shape[1]
    sites = {"mlp": Site("mlp", "mlp.c_proj", "input", 0, d_ff,
                         _conv1d_outputs(layer, "mlp.c_fc") + (WeightSlice("mlp.c_proj.weight", 0),))}
    for k, site in enumerate(("attn_q", "attn_k", "attn_v")):
        sites[site] = Site(site, "attn.c_attn", "output", k * hidden, hidden,
                           _conv1d_outputs(layer, "attn.c_attn", k * hidden))
    sites["attn_o"] = Site("attn_o", "attn.c_proj", "input", 0, hidden, (WeightSlice("attn.c_proj.weight", 0),))
    return sites


_FAMILIES = (("llama-like", _llama_like), ("phi3-like", _phi3_like), ("gpt2-like", _gpt2_like))
_CACHE: "weakref.WeakKeyDictionary[nn.Module, Architecture]" = weakref.WeakKeyDictionary()


def _find_layers(model: nn.Module, n_layers: int) -> str | None:
    """Path of the first ModuleList that holds the model's decoder layers."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and n_layers > 0:
            if all(hasattr(block, "mlp") for block in module):
                return name
    return None


def architecture_of(model: nn.Module) -> Architecture:
    """The adapter for ``model`` (cached per model object)."""
    if model in _CACHE:
        return _CACHE[model]
    config = getattr(model, "config", None)
    if config is None:
        raise UnsupportedModelError(
            f"{type(model).__name__}: not a transformers model (it has no .config); "
            "supported families: Llama, Mistral, Qwen2/Qwen3, Gemma/Gemma2/Gemma3, Phi-3, GPT-2")
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_layers = getattr(text_config, "num_hidden_layers", None) or getattr(text_config, "n_layer", 0)
    path = _find_layers(model, n_layers)
    if path is None:
        raise UnsupportedModelError(
            f"{type(model).__name__}: found no list of {n_layers} decoder layers with an MLP; "
            "supported families: Llama, Mistral, Qwen2/Qwen3, Gemma/Gemma2/Gemma3, Phi-3, GPT-2")
    layer = model.get_submodule(path)[0]
    for family, detect in _FAMILIES:
        sites = detect(layer, text_config)
        if sites is not None:
            arch = Architecture(family, path, n_layers, sites)
            _CACHE[model] = arch
            return arch
    raise UnsupportedModelError(
        f"{type(model).__name__}: its decoder layer ({type(layer).__name__}) has neither separate "
        "gate/up/down + q/k/v/o projections (Llama, Mistral, Qwen, Gemma), fused gate_up/qkv (Phi-3), "
        "nor GPT-2's c_fc/c_proj + c_attn")


FINAL_NORMS = ("norm", "ln_f", "final_layernorm", "final_layer_norm")  # Llama/Gemma/Qwen/Phi-3, GPT-2, others


def final_norm(model: nn.Module) -> nn.Module:
    """The norm applied to the residual stream before the unembedding (``model.norm``, GPT-2's ``ln_f``)."""
    base = getattr(model, "base_model", model)
    for name in FINAL_NORMS:
        module = getattr(base, name, None)
        if isinstance(module, nn.Module):
            return module
    raise UnsupportedModelError(f"{type(model).__name__}: found no final norm ({', '.join(FINAL_NORMS)}) on "
                                f"{type(base).__name__}")


def output_direction(model: nn.Module, layer: int, site: str, index: int):
    """The vector neuron ``index`` of ``site`` writes into the residual stream per unit of activation [hidden]:
    its column of down_proj (``mlp``) or o_proj (``attn_o``), GPT-2's Conv1D row. Sites that are a
    projection's output (attn_q/k/v) write nothing directly and raise ValueError."""
    arch = architecture_of(model)
    s = arch.sites[site]
    weight = next((w for w in s.weights if w.param == f"{s.module}.weight"), None)
    if s.port != "input" or weight is None:
        raise ValueError(f"a {site} neuron is an output channel of {s.module}; only mlp and attn_o neurons write "
                         "a direction into the residual stream")
    param = arch.layer(model, layer).get_parameter(weight.param)
    return param.detach().select(weight.dim, weight.offset + index)
