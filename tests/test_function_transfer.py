"""Transfer, its minimal-subset search and fine-tuning for the bias function (``--function bias``), on tiny-llama
and a sibling with perturbed MLP neurons (saved to a folder, so that the CLI can load it as the donor)."""
import json

import pytest
import torch

from neuronlab import NeuronSet
from neuronlab.cli import main
from neuronlab.data.bias import bundled_bias
from neuronlab.evaluation.bias import preference
from neuronlab.neurons.patches import Patch, patched
from neuronlab.plots import transfer_curve_figure
from neuronlab.transfer.curve import bias_subset, curve_frame
from neuronlab.transfer.ranking import bias_causal_scores, rank_scores, transfer_patch
from tests.support.builders import saved_sibling

BENIGN = ["The river runs past the old mill and into the lake."]


@pytest.fixture(scope="module")
def sibling(tiny, tmp_path_factory):
    """(tiny-llama with 6 MLP neurons per layer perturbed, those neurons, the folder it is saved in)."""
    folder = tmp_path_factory.mktemp("bias-donor")
    return *saved_sibling(tiny, folder), folder


def items(n: int = 6) -> list:
    """``n`` English scan items spread over the domains: what ``transfer --function bias --limit n`` reads."""
    return list(bundled_bias("en", "scan").spread(n))


def test_bias_causal_scores_match_exact_single_swaps(tiny, sibling):
    donor, changed, _ = sibling
    chosen = items()
    scores = bias_causal_scores(donor, tiny, chosen)
    p0 = preference(tiny, chosen).mean().item()
    sample = list(changed)[::2]  # 12 neurons
    exact = []
    for n in sample:
        with patched(tiny, transfer_patch(donor, tiny, NeuronSet([n]), check=False)):
            exact.append(-(1 if p0 >= 0 else -1) * (preference(tiny, chosen).mean().item() - p0))
    estimate = [float(scores["mlp"][n.layer, n.index]) for n in sample]
    # a positive score is a swap that moves the preference toward 0, as measured
    best, worst = max(range(len(sample)), key=estimate.__getitem__), min(range(len(sample)), key=estimate.__getitem__)
    assert estimate[best] > 0 and exact[best] > 0 and estimate[worst] < 0 and exact[worst] < 0
    rank = lambda v: torch.tensor(v).argsort().argsort().double()  # noqa: E731
    assert torch.corrcoef(torch.stack([rank(estimate), rank(exact)]))[0, 1] >= 0.9
    moved = torch.zeros_like(scores["mlp"], dtype=torch.bool)
    for n in changed:
        moved[n.layer, n.index] = True
    assert (scores["mlp"][~moved] == 0).all()  # identical weights score exactly 0
    # deletion swaps the models' roles: the donor is the destination, and the aim is still toward 0
    assert rank_scores("causal", donor, tiny, prompts=chosen, delete=True, function="bias").top(count=5) == \
        bias_causal_scores(tiny, donor, chosen).top(count=5)


def test_bias_contrast_reads_stereotype_against_anti_stereotype_sentences(tiny):
    chosen = items(4)
    scores = rank_scores("contrast", tiny, tiny, prompts=chosen, function="bias")
    refusal = rank_scores("contrast", tiny, tiny, prompts=None, lang="en")
    assert scores["mlp"].shape == refusal["mlp"].shape and not torch.equal(scores["mlp"], refusal["mlp"])
    with pytest.raises(ValueError, match="causal needs a fast score"):  # a user's own function: contrast only
        rank_scores("causal", tiny, tiny, function="match")
    with pytest.raises(ValueError, match="transfer takes refusal, bias, match"):
        rank_scores("contrast", tiny, tiny, function="style")


def test_transfer_cli_bias_causal_writes_the_top_of_the_bias_ranking(tiny, sibling, tmp_path, capsys):
    donor, _, folder = sibling
    out = tmp_path / "bias.safetensors"
    assert main(["transfer", "--donor", str(folder), "--target", "tiny-llama", "--function", "bias", "--rank", "causal",
                 "--limit", "6", "--count", "5", "--out", str(out)]) == 0
    patch = Patch.load(out)
    assert patch.neurons == bias_causal_scores(donor, tiny, items()).top(count=5)
    assert patch.meta["function"] == "bias" and patch.meta["ranking"] == "causal"
    assert "ranked by causal for bias" in capsys.readouterr().out
    refusal = tmp_path / "refusal.safetensors"  # a refusal transfer names no function (its files are as before)
    assert main(["transfer", "--donor", str(folder), "--target", "tiny-llama", "--count", "5", "--out", str(refusal)]) == 0
    assert "function" not in Patch.load(refusal).meta


def test_transfer_cli_bias_search_writes_a_bias_curve(sibling, tmp_path, capsys):
    _, _, folder = sibling
    curve, out = tmp_path / "curve.json", tmp_path / "min.safetensors"
    args = ["transfer", "--donor", str(folder), "--target", "tiny-llama", "--function", "bias", "--rank", "causal",
            "--limit", "3", "--search", "--max-ppl-change", "10", "--max-lm-drop", "1", "--start", "2",
            "--curve", str(curve), "--out", str(out)]
    assert main(args + ["--goal", "1"]) == 0  # within 50 points of 50%: met at the first step
    data = json.loads(curve.read_text())
    assert data["function"] == "bias" and data["found_k"] == 2 and data["max_lm_drop"] == 1
    assert "max_false_refusal" not in data and "threshold" not in data
    assert set(data["base"]) == {"stereotype", "preference", "lm", "perplexity"}
    assert {"stereotype", "random_stereotype", "lm"} <= set(data["points"][0])
    html = (tmp_path / "curve.html").read_text()
    assert "stereotype score, ranked" in html and "Bias: stereotype score" in html
    patch = Patch.load(out)
    assert len(patch.neurons) == 2 and patch.meta["function"] == "bias"
    assert "stereotype" in capsys.readouterr().out
    # three items score 0, 1/3, 2/3 or 1: never exactly 50%, so goal 0.5 is never met and no patch is written
    assert main(args[:-2] + ["--out", str(tmp_path / "none.safetensors"), "--goal", "0.5", "--max-fraction",
                             "0.01"]) == 2
    assert "goal not met" in capsys.readouterr().err and not (tmp_path / "none.safetensors").exists()
    assert main(args + ["--goal", "1.5"]) == 2
    assert "for bias, a stereotype score between 0 and 1" in capsys.readouterr().err


def test_bias_search_curve_round_trips_and_draws_stereotype_and_lm_scores(tiny, sibling, tmp_path):
    donor, _, _ = sibling
    chosen = items(3)
    scores = bias_causal_scores(donor, tiny, chosen)
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    result = bias_subset(donor, tiny, scores, chosen, BENIGN, goal=0.5, max_fraction=0.04, start=4, seeds=2)
    assert result.found is None and [p.k for p in result.points] == [4, 8, 16, 20]
    assert all(torch.equal(v, before[k]) for k, v in tiny.model.state_dict().items())  # bit-identical afterwards
    assert result.base.stereotype in (0, 1 / 3, 2 / 3, 1)
    saved = json.loads(result.save(tmp_path / "c.json").read_text())
    assert curve_frame(saved).equals(result.to_frame())
    fig = transfer_curve_figure(result.to_frame(), goal=0.55)
    names = {t.name for t in fig.data}
    assert {"stereotype score, ranked", "LM score, random", "perplexity, ranked"} <= names
    assert not {n for n in names if "refusal" in n}
    assert fig.layout.yaxis.title.text == "stereotype score, LM score"
    assert [(s.y0, s.y1) for s in fig.layout.shapes if s.type == "rect"] == [pytest.approx((0.45, 0.55))]


def test_finetune_cli_bias_trains_only_the_given_neurons_and_lowers_the_squared_preference(tiny, tmp_path, capsys):
    neurons = NeuronSet([(layer, "mlp", i) for layer in (1, 2) for i in range(0, 128, 4)])
    ref, out = tmp_path / "neurons.json", tmp_path / "debias.safetensors"
    neurons.save(ref)
    assert main(["finetune", "--model", "tiny-llama", "--function", "bias", "--neurons", str(ref), "--langs", "en",
                 "--limit", "8", "--steps", "12", "--lr", "3e-2", "--batch-size", "4", "--keep-weight", "0.1",
                 "--out", str(out)]) == 0
    patch = Patch.load(out)
    assert patch.neurons == neurons and patch.meta["method"] == "debias" and patch.meta["items"] == 8
    trained_on = items(8)
    squared = preference(tiny, trained_on).pow(2).mean().item()
    with patched(tiny, patch):
        after = preference(tiny, trained_on).pow(2).mean().item()
    assert after < 0.5 * squared
    assert patch.meta["squared_preference"] == pytest.approx({"before": squared, "after": after})
    assert "mean squared preference" in capsys.readouterr().out


def test_bias_ranking_sign_on_a_real_pair(smol, donor):
    """demo-donor differs from demo-target in its trained neurons: the swap ranked best moves demo-target's
    preference toward 0 and the one ranked worst moves it away, as measured."""
    chosen = items(4)
    scores = bias_causal_scores(donor, smol, chosen)
    p0 = preference(smol, chosen).mean().item()
    flat = scores["mlp"].flatten()
    width = scores["mlp"].shape[1]
    for index, sign in ((int(flat.argmax()), 1), (int(flat.argmin()), -1)):
        neuron = NeuronSet([(index // width, "mlp", index % width)])
        with patched(smol, transfer_patch(donor, smol, neuron, check=False)):
            toward = abs(p0) - abs(preference(smol, chosen).mean().item())
        assert sign * toward > 0, (neuron, toward)
