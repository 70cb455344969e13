"""Effects and their random controls: mean-ablation, patches applied and reverted, the controls block."""
import dataclasses
import json

import pytest
import torch

import neuronlab.evaluation.effects
from neuronlab import NeuronSet, intervene
from neuronlab.cli import main
from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.effects import Effect, copy_from, evaluate_effects, fixed, mean_ablation
from neuronlab.evaluation.metrics import benign_texts, perplexity
from neuronlab.models.generation import encode_prompts
from neuronlab.neurons.interventions import scoped_hooks
from neuronlab.neurons.patches import extract_patch, fingerprint, patched
from neuronlab.neurons.sets import random_like

NEURONS = NeuronSet([(0, "mlp", 5), (0, "mlp", 77), (2, "mlp", 3), (2, "attn_v", 7), (3, "attn_q", 1)], name="few")
HARMLESS = bundled_prompts("en", split="scan").filter(label="harmless").texts[:5]


def captured(lm, texts, intervention=()):
    """{neuron: its activation [batch, seq]} for every neuron of NEURONS on ``texts`` (left-padded)."""
    seen, hooks = {}, []

    def keep(x, n, channel):  # x [batch, seq, width]
        seen[n] = x[..., channel].clone()

    for n in NEURONS:
        site = lm.arch.sites[n.site]
        hooks.append((lm.arch.module(lm.model, n.layer, n.site), site.port,
                      lambda x, n=n, c=site.offset + n.index: keep(x, n, c)))
    with intervene(lm, intervention), scoped_hooks(hooks), torch.no_grad():  # registered after the intervention's
        lm.model(**encode_prompts(lm, texts))
    return seen


def test_mean_ablation_holds_each_neuron_at_its_last_token_mean(tiny):
    iv = mean_ablation(tiny, NEURONS, HARMLESS)
    assert iv.mode == "mean" and set(iv.value) == set(NEURONS)
    singles = [captured(tiny, [t]) for t in HARMLESS]  # one prompt a pass: no padding
    held, plain = captured(tiny, HARMLESS[:2], iv), captured(tiny, HARMLESS[:2])
    for n in NEURONS:
        assert iv.value[n] == pytest.approx(torch.stack([s[n][0, -1] for s in singles]).mean().item(), abs=1e-5)
        assert torch.equal(held[n], torch.full_like(held[n], iv.value[n]))  # every position, padding included
        assert not torch.equal(plain[n], held[n])


def test_mean_mode_needs_per_neuron_values():
    from neuronlab import Intervention

    with pytest.raises(ValueError, match="mean"):
        Intervention(NEURONS, "mean", 0.5)


@pytest.fixture(scope="module")
def source(tiny):
    """tiny-llama with every weight nudged: a stand-in donor."""
    model = type(tiny.model)(tiny.model.config)
    model.load_state_dict({k: v + 0.05 * torch.randn_like(v) for k, v in tiny.model.state_dict().items()})
    return dataclasses.replace(tiny, model=model.eval())


def test_controls_rebuild_the_effect_on_random_sets_and_leave_the_model_as_it_was(tiny, source):
    prompts = bundled_prompts("en", split="heldout")
    prompts = type(prompts)(p for p in prompts if p.id in ("harmful-002", "harmless-002"))
    effect = Effect("patch", NEURONS, make_patch=copy_from(source), label="transfer")
    fp = fingerprint(tiny.model)
    out = evaluate_effects(tiny, prompts, ["en"], [effect], seeds=(0, 1), max_new_tokens=2)
    assert fingerprint(tiny.model) == fp  # every patch reverted bit for bit

    text = benign_texts("en")
    assert out["baseline"]["languages"]["en"]["perplexity"] == perplexity(tiny, text)
    with patched(tiny, extract_patch(source, NEURONS)):
        assert out["languages"]["en"]["perplexity"] == perplexity(tiny, text)
    runs = out["controls"]["runs"]
    for seed, run in zip((0, 1), runs):
        with patched(tiny, extract_patch(source, random_like(NEURONS, tiny.arch, seed))):
            assert run["seed"] == seed and run["languages"]["en"]["perplexity"] == perplexity(tiny, text)
    ppl = [r["languages"]["en"]["perplexity"] for r in runs]
    summary = out["controls"]["summary"]["languages"]["en"]["perplexity"]
    assert summary["mean"] == pytest.approx(sum(ppl) / 2) and summary["sd"] > 0
    change = out["effect"]["languages"]["en"]["perplexity"]
    base = out["baseline"]["languages"]["en"]["perplexity"]
    assert change["real"] == pytest.approx(out["languages"]["en"]["perplexity"] / base - 1)
    assert change["controls"] == pytest.approx(summary["mean"] / base - 1)
    harmful = out["effect"]["languages"]["en"]["harmful"]
    assert set(harmful) == {"real", "real_stderr", "controls", "controls_sd", "excess"}
    assert out["effects"] == [effect.describe()] and out["effects"][0]["neurons"] == 5


def test_controls_that_change_no_weight_reuse_the_baseline(tiny, source, monkeypatch):
    prompts = bundled_prompts("en", split="heldout")
    prompts = type(prompts)(p for p in prompts if p.id in ("harmful-002", "harmless-002"))
    donor = dataclasses.replace(tiny, model=type(tiny.model)(tiny.model.config))
    donor.model.load_state_dict(tiny.model.state_dict())
    seeds = (0, 1, 2)
    overlapping = [bool(set(random_like(NEURONS, tiny.arch, s)) & set(NEURONS)) for s in seeds]
    assert not all(overlapping)
    runs, replies = [], []
    real_evaluate = neuronlab.evaluation.effects.evaluate
    monkeypatch.setattr(neuronlab.evaluation.effects, "evaluate", lambda *a, **k: runs.append(1) or real_evaluate(*a, **k))
    with patched(donor, extract_patch(source, NEURONS)):  # a donor that differs from tiny on NEURONS only
        out = evaluate_effects(tiny, prompts, ["en"], [Effect("patch", NEURONS, make_patch=copy_from(donor))],
                               seeds=seeds, max_new_tokens=2, on_reply=replies.append)
    assert len(runs) == 2 + sum(overlapping)  # baseline, effect, and only the controls that change a weight

    def of(variant):
        return [{k: v for k, v in r.items() if k != "variant"} for r in replies if r["variant"] == variant]

    base = of("baseline")
    for seed, run, overlaps in zip(seeds, out["controls"]["runs"], overlapping):
        mine = of(f"control seed {seed}")
        assert len(mine) == len(base) == 2
        if not overlaps:
            assert run == {"seed": seed, **out["baseline"]} and mine == base


def test_a_fixed_patch_has_no_controls(tiny, source):
    make = fixed(extract_patch(source, NEURONS))
    assert make(NEURONS).neurons == NEURONS
    with pytest.raises(ValueError, match="rebuilt"):
        make(random_like(NEURONS, tiny.arch, 0))


def test_eval_verb_reports_controls_and_removes_a_difference(tmp_path, capsys):
    ref = NEURONS.save(tmp_path / "few.json")
    common = ["eval", "--model", "tiny-llama", "--langs", "en", "--limit", "1", "--max-new-tokens", "2", "--json"]
    assert main(common + ["--mean", str(ref), "--controls", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["languages"]["en"]["harmful"]["n"] == 1 and out["utility"]["perplexity"] > 1  # §4 shape kept
    assert [r["seed"] for r in out["controls"]["runs"]] == [0, 1]
    assert out["interventions"] == [{"mode": "mean", "neurons": 5, "value": None}]
    assert out["effect"]["utility"]["perplexity"]["real"] != 0

    # the difference between a model and itself is nothing: removing it changes no figure
    assert main(common + ["--remove-diff", "tiny-llama", "--neurons", str(ref), "--controls", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["effects"][0]["label"] == "remove-diff tiny-llama"
    assert out["effect"]["languages"]["en"]["perplexity"] == {"real": 0.0, "controls": 0.0, "controls_sd": 0.0}
    assert main(common + ["--remove-diff", "tiny-llama"]) == 2
    assert "--neurons" in capsys.readouterr().err


def test_eval_verb_controls_for_patch_files(tiny, tmp_path, capsys):
    from neuronlab.transfer.ranking import transfer_patch

    common = ["eval", "--model", "tiny-llama", "--langs", "en", "--limit", "1", "--max-new-tokens", "2", "--json"]
    transfer = transfer_patch(tiny, tiny, NEURONS).save(tmp_path / "transfer.safetensors")
    assert main(common + ["--patch", str(transfer), "--controls", "1"]) == 0  # controls copy from its source
    out = json.loads(capsys.readouterr().out)
    assert out["controls"]["seeds"] == [0] and out["effects"][0]["mode"] == "patch"
    trained = extract_patch(tiny, NEURONS, target_fingerprint=tiny.info.fingerprint).save(  # no source to copy from
        tmp_path / "trained.safetensors")
    assert main(common + ["--patch", str(trained), "--controls", "1"]) == 2
    assert "no random controls" in capsys.readouterr().err


def test_eval_names_an_unknown_site_before_building_controls(tmp_path, capsys):
    bad = tmp_path / "bogus.json"
    bad.write_text('{"neurons": [[0, "bogus", 1]]}')
    args = ["eval", "--model", "tiny-llama", "--suppress", str(bad), "--langs", "en", "--limit", "1",
            "--max-new-tokens", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bogus" in err[0] and "Traceback" not in err[0]
