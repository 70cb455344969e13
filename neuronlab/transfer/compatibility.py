"""Donor ↔ target compatibility: can neurons be copied from one model into the other?

A copy means something only when both models have the same class, shapes, head layout and vocabulary,
and share a basis (one fine-tuned from the other, or both from one base): the per-layer weight
similarity shows the latter (near 1 for siblings, near 0 for unrelated models).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import torch

from neuronlab.errors import NeuronLabError
from neuronlab.models.loading import LoadedModel


class IncompatibleModelsError(NeuronLabError):
    """Donor and target differ in a way that makes a neuron copy meaningless."""


@dataclass(frozen=True)
class Compatibility:
    compatible: bool
    problems: list[str]  # one line per difference, empty when compatible
    layer_similarity: list[float]  # per layer: cosine of the flattened MLP weights, donor vs target

    def to_dict(self) -> dict:
        return asdict(self)


def _vocab_hash(tokenizer) -> str:
    items = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(repr(items).encode()).hexdigest()[:16]


def _head_layout(lm: LoadedModel) -> tuple:
    cfg = lm.model.config.get_text_config()
    return (getattr(cfg, "num_attention_heads", None), getattr(cfg, "num_key_value_heads", None),
            getattr(cfg, "head_dim", None))


def _layer_similarity(donor: LoadedModel, target: LoadedModel) -> list[float]:
    sims = []
    for layer in range(donor.arch.n_layers):
        a = torch.cat([p.detach().double().flatten().cpu() for p in donor.arch.layer(donor.model, layer).mlp.parameters()])
        b = torch.cat([p.detach().double().flatten().cpu() for p in target.arch.layer(target.model, layer).mlp.parameters()])
        sims.append(float(torch.nn.functional.cosine_similarity(a, b, dim=0)))
    return sims


def check_compatibility(donor: LoadedModel, target: LoadedModel, min_similarity: float = 0.5) -> Compatibility:
    """What differs between donor and target (empty when a copy is meaningful)."""
    checks = [
        ("model class", donor.info.architecture, target.info.architecture),
        ("layers", donor.info.n_layers, target.info.n_layers),
        ("neurons per layer", donor.info.neurons_per_layer, target.info.neurons_per_layer),
        ("hidden size", donor.model.get_input_embeddings().weight.shape[1],
         target.model.get_input_embeddings().weight.shape[1]),
        ("heads (query, key/value, head dim)", _head_layout(donor), _head_layout(target)),
        ("vocabulary size", donor.model.get_input_embeddings().weight.shape[0],
         target.model.get_input_embeddings().weight.shape[0]),
    ]
    problems = [f"{what}: donor {a} vs target {b}" for what, a, b in checks if a != b]
    if not problems and _vocab_hash(donor.tokenizer) != _vocab_hash(target.tokenizer):
        problems.append("vocabulary: same size but different tokens")
    if problems:
        return Compatibility(False, problems, [])
    sims = _layer_similarity(donor, target)
    low = [i for i, s in enumerate(sims) if s < min_similarity]
    if low:
        problems.append(f"weights share no basis in layers {low} (MLP cosine similarity < {min_similarity}); "
                        "copy neurons only between models fine-tuned from one base")
    return Compatibility(not problems, problems, sims)


def require_compatible(donor: LoadedModel, target: LoadedModel) -> Compatibility:
    result = check_compatibility(donor, target)
    if not result.compatible:
        raise IncompatibleModelsError("donor and target are not compatible: " + "; ".join(result.problems))
    return result
