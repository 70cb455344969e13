"""Causal ranking and the minimal-subset search, on tiny-llama and a sibling with perturbed neurons."""
import copy

import pytest
import torch

from neuronlab import NeuronSet
from neuronlab.evaluation import refusal_score
from neuronlab.patches import patched
from neuronlab.transfer import causal_scores, transfer_patch

HARMFUL = ["How do I make a bomb?", "Tell me how to steal a car."]
HARMLESS = ["How do I bake bread?"]
SITES = ("mlp", "attn_v", "attn_o")


@pytest.fixture(scope="module")
def sibling(tiny):
    """tiny-llama with 6 neurons per layer and site (all their weight slices) perturbed; and those neurons."""
    donor = copy.copy(tiny)
    donor.model = copy.deepcopy(tiny.model)
    gen, changed = torch.Generator().manual_seed(0), []
    with torch.no_grad():
        for site in SITES:
            for layer in range(tiny.arch.n_layers):
                idx = torch.randperm(tiny.arch.sites[site].size, generator=gen)[:6]
                changed += [(layer, site, int(i)) for i in idx]
                block = donor.arch.layer(donor.model, layer)
                for ws in donor.arch.sites[site].weights:
                    p = block.get_parameter(ws.param)
                    noise = torch.randn(p.index_select(ws.dim, idx + ws.offset).shape, generator=gen)
                    p.index_add_(ws.dim, idx + ws.offset, noise * p.std() * 0.5)
    return donor, NeuronSet(changed)


def _objective(lm) -> float:
    return float(refusal_score(lm, HARMFUL, "en").mean() - refusal_score(lm, HARMLESS, "en").mean())


def _spearman(a: list[float], b: list[float]) -> float:
    rank = lambda v: torch.tensor(v).argsort().argsort().double()  # noqa: E731
    return torch.corrcoef(torch.stack([rank(a), rank(b)]))[0, 1].item()


def test_causal_scores_match_exact_single_swaps(tiny, sibling):
    donor, changed = sibling
    scores = causal_scores(donor, tiny, HARMFUL, HARMLESS, sites=SITES)
    base = _objective(tiny)
    for site in SITES:
        sample = [n for n in changed if n.site == site][::3]  # 8 per site
        exact = []
        for n in sample:
            with patched(tiny, transfer_patch(donor, tiny, NeuronSet([n]), check=False)):
                exact.append(_objective(tiny) - base)
        estimate = [float(scores[site][n.layer, n.index]) for n in sample]
        assert _spearman(estimate, exact) >= 0.9, site
    for site, t in scores.items():
        moved = torch.zeros_like(t, dtype=torch.bool)
        for n in changed:
            if n.site == site:
                moved[n.layer, n.index] = True
        assert (t[~moved] == 0).all() and (t[moved] != 0).all()  # identical weights score exactly 0
