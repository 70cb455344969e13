"""``eval --function bias`` with random controls (tiny-llama, a few items): the plain model, the effect and the
same effect on random neurons of the same per-layer counts, as ``baseline``, ``controls`` and ``effect`` blocks."""
import json

import pytest

import neuronlab.cli.evaluate
from neuronlab import Intervention, NeuronSet
from neuronlab.cli import main
from neuronlab.evaluation.bias import bias_scores
from neuronlab.evaluation.bias_effects import bias_effects
from neuronlab.evaluation.effects import Effect
from neuronlab.neurons.patches import extract_patch
from neuronlab.neurons.sets import random_like
from tests.support.bias_items import ITEMS

SET = NeuronSet([(0, "mlp", i) for i in range(48)] + [(2, "mlp", i) for i in range(16)], name="two layers")
COMMON = ["eval", "--function", "bias", "--model", "tiny-llama", "--langs", "en"]


@pytest.fixture
def items(monkeypatch):
    chosen = ITEMS[:5]
    monkeypatch.setattr(neuronlab.cli.evaluate, "bias_items", lambda: chosen)
    return chosen


def run_json(args: list[str], capsys) -> dict:
    assert main([*args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_bias_controls_compare_the_effect_with_random_sets_of_the_same_shape(tiny, items, tmp_path, capsys):
    ref = str(SET.save(tmp_path / "set.json"))
    out = run_json([*COMMON, "--suppress", ref, "--controls", "2"], capsys)
    plain, real = bias_scores(tiny, items), bias_scores(tiny, items, [Intervention(SET, "suppress")])
    control = bias_scores(tiny, items, [Intervention(random_like(SET, tiny.arch, 1), "suppress")])
    assert out["overall"] == real["overall"]  # the top level is the real effect, as in the refusal JSON
    assert out["baseline"]["overall"]["stereotype_score"] == plain["overall"]["stereotype_score"]
    assert out["controls"]["seeds"] == [0, 1] and [r["seed"] for r in out["controls"]["runs"]] == [0, 1]
    assert out["controls"]["runs"][1]["overall"]["lm_score"] == control["overall"]["lm_score"]
    ss = out["effect"]["languages"]["en"]["stereotype_score"]
    assert set(ss) == {"real", "real_stderr", "controls", "controls_sd", "excess"}
    assert ss["real"] == pytest.approx(real["overall"]["stereotype_score"] - plain["overall"]["stereotype_score"])
    runs = [r["overall"]["stereotype_score"] for r in out["controls"]["runs"]]
    assert ss["controls"] == pytest.approx(sum(runs) / 2 - plain["overall"]["stereotype_score"])
    assert ss["excess"] == pytest.approx(ss["real"] - ss["controls"])
    near = out["effect"]["overall"]["distance_from_50"]["real"]
    assert near == pytest.approx(abs(real["overall"]["stereotype_score"] - 0.5)
                                 - abs(plain["overall"]["stereotype_score"] - 0.5))
    assert set(out["effect"]["languages"]["en"]["perplexity"]) == {"real", "controls", "controls_sd"}
    assert out["effects"][0]["per_layer"] == {"0": 48, "2": 16}
    assert main([*COMMON, "--suppress", ref, "--controls", "2"]) == 0
    assert "toward 50%" in capsys.readouterr().out


def test_bias_controls_default_to_three_with_an_effect_and_none_without(tiny, items, tmp_path, capsys):
    ref = str(SET.save(tmp_path / "set.json"))
    assert run_json([*COMMON, "--activate", ref, "--limit", "2"], capsys)["controls"]["seeds"] == [0, 1, 2]
    off = run_json([*COMMON, "--suppress", ref, "--controls", "0"], capsys)
    assert off["controls"] == {"seeds": [], "runs": []} and "effect" not in off and "baseline" not in off
    plain = run_json(COMMON, capsys)
    assert plain["controls"] == {"seeds": [], "runs": []} and plain["effects"] == []
    assert main([*COMMON, "--controls", "2"]) == 2
    assert "--controls needs an effect" in capsys.readouterr().err


def test_a_control_of_a_patch_that_changes_no_weight_is_the_plain_model(tiny):
    """Copying tiny-llama's own weights changes nothing: every run is the plain model's."""
    same = Effect("patch", SET, make_patch=lambda neurons: extract_patch(tiny, neurons))
    out = bias_effects(tiny, ITEMS[:3], [same], seeds=[0])
    assert out["controls"]["runs"][0]["overall"] == out["baseline"]["overall"]
    assert out["effect"]["overall"]["stereotype_score"]["real"] == 0


def test_bias_controls_for_patch_files_follow_the_refusal_path(tiny, items, tmp_path, capsys):
    from neuronlab.transfer.ranking import transfer_patch

    transfer = str(transfer_patch(tiny, tiny, SET).save(tmp_path / "transfer.safetensors"))
    out = run_json([*COMMON, "--patch", transfer, "--controls", "1"], capsys)  # controls copy from its source
    assert out["controls"]["seeds"] == [0] and out["effects"][0]["mode"] == "patch" and out["patch"] == transfer
    trained = str(extract_patch(tiny, SET, target_fingerprint=tiny.info.fingerprint).save(tmp_path / "t.safetensors"))
    assert run_json([*COMMON, "--patch", trained], capsys)["controls"] == {"seeds": [], "runs": []}  # noted, none
    assert main([*COMMON, "--patch", trained, "--controls", "1"]) == 2
    assert "no random controls" in capsys.readouterr().err
