"""Test data builders: a patch that visibly changes a model, a sibling model with perturbed neurons, a fake
``evaluate`` result, and neuron sets (a small hand-made trio, random ones) with their exclusive regions counted by
brute force."""
import copy
import random
from itertools import combinations
from pathlib import Path

import torch

from neuronlab import NeuronSet
from neuronlab.evaluation.metrics import Rate
from neuronlab.neurons.patches import Patch, extract_patch

# ---- patches (tests/test_host.py, tests/test_app.py) -------------------------------------------------
NEURONS = NeuronSet([(0, "mlp", i) for i in range(64)] + [(2, "attn_v", 3)])


def scrambled_patch(lm, neurons: NeuronSet = NEURONS, seed: int = 0) -> Patch:
    """A patch made for ``lm`` that writes random weights into ``neurons`` (so it visibly changes it)."""
    patch = extract_patch(lm, neurons, target_fingerprint=lm.info.fingerprint)
    gen = torch.Generator().manual_seed(seed)
    return Patch(patch.neurons, {k: torch.randn(v.shape, generator=gen) for k, v in patch.tensors.items()},
                 patch.meta)


def perturbed_sibling(lm, sites, per_site: int = 6, seed: int = 0):
    """(a copy of ``lm`` with ``per_site`` random neurons per layer and site perturbed in all their weight slices,
    those neurons): a donor whose changed neurons are known (tests/test_search.py, tests/test_function_transfer.py)."""
    donor = copy.copy(lm)
    donor.model = copy.deepcopy(lm.model)
    gen, changed = torch.Generator().manual_seed(seed), []
    with torch.no_grad():
        for site in sites:
            for layer in range(lm.arch.n_layers):
                idx = torch.randperm(lm.arch.sites[site].size, generator=gen)[:per_site]
                changed += [(layer, site, int(i)) for i in idx]
                block = donor.arch.layer(donor.model, layer)
                for ws in donor.arch.sites[site].weights:
                    p = block.get_parameter(ws.param)
                    noise = torch.randn(p.index_select(ws.dim, idx + ws.offset).shape, generator=gen)
                    p.index_add_(ws.dim, idx + ws.offset, noise * p.std() * 0.5)
    return donor, NeuronSet(changed)


def saved_sibling(lm, folder: Path, sites=("mlp",)):
    """``perturbed_sibling`` saved to ``folder`` (safetensors and tokenizer), so that the CLI or the app loads it
    as a donor by its path: (the sibling, its changed neurons)."""
    donor, changed = perturbed_sibling(lm, sites)
    donor.model.save_pretrained(folder)
    donor.tokenizer.save_pretrained(folder)
    return donor, changed


# ---- evaluation results (tests/test_evaluation.py, tests/test_plots.py) ------------------------------
def fake_result(harmful: int, harmless: int, n: int = 10, langs=("en", "zh"), ppl: float = 12.0) -> dict:
    """An ``evaluate`` result with the given refusal counts in every language."""
    def block(k: int, label: str) -> dict:
        return {**Rate(k, n).to_dict(), "reply_languages": {"en": n - 1, "zh": 1},
                "examples": [{"prompt": f"{label} 1", "reply": "No.", "refusal": True, "reply_lang": "en"}]}
    languages = {lang: {"harmful": block(harmful, "harmful"), "harmless": block(harmless, "harmless"),
                        "perplexity": ppl + i} for i, lang in enumerate(langs)}
    return {"languages": languages, "utility": {"perplexity": ppl, "mc_accuracy": 0.5, "mc_stderr": 0.1, "mc_n": 20}}


# ---- neuron sets (tests/test_overlap.py, tests/test_plots.py) ----------------------------------------
EN = NeuronSet([(0, "mlp", 1), (0, "mlp", 2), (1, "mlp", 5), (2, "attn_q", 3)])
ZH = NeuronSet([(0, "mlp", 2), (1, "mlp", 5), (1, "mlp", 6)])
KO = NeuronSet([(0, "mlp", 2), (2, "attn_q", 3), (3, "mlp", 0)])
SMALL = {"en": EN, "zh": ZH, "ko": KO}


def random_sets(seed: int, n_langs: int, n_layers: int = 6) -> dict[str, NeuronSet]:
    rng = random.Random(seed)
    langs = ["en", "zh", "ko", "th", "bn", "sw"][:n_langs]
    return {lang: NeuronSet({(rng.randrange(n_layers), rng.choice(["mlp", "attn_o"]), rng.randrange(30))
                             for _ in range(rng.randrange(0, 80))}) for lang in langs}


def brute_regions(sets: dict[str, NeuronSet]) -> dict[frozenset, int]:
    """Region counts from plain Python set operations: in every set of the combination, in no other."""
    out = {}
    for k in range(1, len(sets) + 1):
        for combo in combinations(sets, k):
            inside = set.intersection(*(set(sets[n]) for n in combo))
            outside = set().union(*(set(sets[n]) for n in sets if n not in combo))
            out[frozenset(combo)] = len(inside - outside)
    return out
