"""The bias donor: the MLP neurons that carry the stereotype preference, turned down in the weights."""
import pytest

from neuronlab.cli import main
from neuronlab.data.bias import bundled_bias
from neuronlab.evaluation.bias import preference
from neuronlab.evaluation.bias_attribution import preference_attribution
from neuronlab.neurons.patches import Patch, fingerprint, patched
from neuronlab.neurons.scores import Scores
from neuronlab.training.bias_donor import BiasDonorConfig, bias_carriers, loss_cost, make_bias_donor

BENIGN = ["The river runs past the old mill and into the lake.", "Bread rises when the yeast is warm."]


@pytest.fixture(scope="module")
def items():
    return list(bundled_bias("en", "scan").spread(8))


def test_the_donor_turns_down_the_carriers_and_lowers_the_preference(tiny, items):
    before = fingerprint(tiny.model)
    config = BiasDonorConfig(count=12, scale=0.0)
    patch = make_bias_donor(tiny, items, config)
    assert fingerprint(tiny.model) == before
    lowers = -preference_attribution(tiny, items)["mlp"]
    assert set(patch.neurons) == set(Scores({"mlp": lowers}).top(count=12))
    assert patch.meta["count"] == 12 and patch.meta["scale"] == 0.0 and patch.meta["langs"] == ["en"]
    plain = preference(tiny, items).mean().item()
    with patched(tiny, patch):
        donor = preference(tiny, items).mean().item()
    assert donor < plain


def test_the_cost_filter_leaves_the_neurons_the_language_model_leans_on(tiny, items):
    cost = loss_cost(tiny, BENIGN)
    assert cost.shape == (tiny.arch.n_layers, tiny.arch.sites["mlp"].size) and (cost >= 0).all()
    chosen = bias_carriers(tiny, items, BiasDonorConfig(count=20, scale=0.5, cost_quantile=0.3), BENIGN)
    limit = cost.flatten().quantile(0.3)
    assert len(chosen) == 20 and all(cost[layer, i] <= limit for layer, _, i in chosen)
    assert chosen != bias_carriers(tiny, items, BiasDonorConfig(count=20, scale=0.5))


@pytest.mark.parametrize("kwargs, fragment", [({"count": 0}, "at least 1"), ({"scale": 1.0}, "scale"),
                                              ({"scale": -0.1}, "scale"), ({"cost_quantile": 0.0}, "cost_quantile")])
def test_a_bad_config_says_what_is_wrong(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        BiasDonorConfig(**kwargs)


def test_no_items_or_no_benign_text_for_the_cost_is_an_error(tiny, items):
    with pytest.raises(ValueError, match="no bias items"):
        make_bias_donor(tiny, [])
    with pytest.raises(ValueError, match="benign texts"):
        bias_carriers(tiny, items, BiasDonorConfig(cost_quantile=0.5))


def test_the_verb_writes_the_donor_patch(tiny, tmp_path, capsys):
    out = tmp_path / "bias-donor.safetensors"
    assert main(["make-bias-donor", "--model", "tiny-llama", "--count", "8", "--scale", "0.25",
                 "--out", str(out)]) == 0
    patch = Patch.load(out)
    items = list(bundled_bias("en", "scan"))
    assert set(patch.neurons) == set(Scores({"mlp": -preference_attribution(tiny, items)["mlp"]}).top(count=8))
    assert patch.meta["scale"] == 0.25 and patch.meta["items"] == len(items)
    assert "turned down 8 MLP neurons" in capsys.readouterr().out


@pytest.mark.parametrize("flag, value", [("--scale", "1"), ("--count", "0"), ("--cost-quantile", "0")])
def test_a_bad_flag_exits_2_before_any_model_loads(flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["make-bias-donor", "--model", "no/such-model", flag, value, "--out", str(tmp_path / "p.safetensors")])
    assert stop.value.code == 2 and flag in capsys.readouterr().err
