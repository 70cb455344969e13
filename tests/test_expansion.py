"""SS-Neuron Expansion: the parallel refusals, the parallel safety set, early stopping and the finetune verb."""
import pytest
import torch

from neuronlab import NeuronSet
from neuronlab.cli import main
from neuronlab.data.prompts import BUNDLED_LANGUAGES
from neuronlab.evaluation.judge import judge
from neuronlab.evaluation.langid import LANGUAGES
from neuronlab.neurons.patches import Patch, fingerprint, patched
from neuronlab.training.donors import donor_examples
from neuronlab.training.expansion import FalseRefusalStop, expand, parallel_examples, refusals, retrainer, safety_split
from neuronlab.training.finetune import TrainConfig, refusal_pairs

NEURONS = NeuronSet([(layer, "mlp", i) for layer in (1, 3) for i in range(0, 128, 8)] + [(2, "attn_o", 4)])


def test_refusals_are_parallel_and_judged_refusals_in_every_bundled_language():
    assert set(BUNDLED_LANGUAGES) <= set(LANGUAGES)
    counts = {len(refusals(lang)) for lang in BUNDLED_LANGUAGES}
    assert counts == {len(refusals("en"))} and len(refusals("en")) >= 5
    for lang in BUNDLED_LANGUAGES:
        for text in refusals(lang):
            verdict = judge(text, lang)
            assert verdict.refusal and verdict.reply_lang == lang, (lang, text)


def test_parallel_set_pairs_an_id_with_the_same_refusal_in_every_language(tiny):
    prompts, _ = safety_split(["en", "zh"], validation=0, limit=2)
    examples = {e.prompt: e.reply for e in parallel_examples(tiny, prompts, ["en", "zh"], harmless_repeat=2, max_new_tokens=2)}
    for p in prompts.filter(lang="en", label="harmful"):
        k = refusals("en").index(examples[p.text])
        zh = next(q for q in prompts.filter(lang="zh") if q.id == p.id)
        assert examples[zh.text] == refusals("zh")[k]
    pairs = parallel_examples(tiny, prompts, ["zh"], harmless_repeat=2, max_new_tokens=2)
    assert len(pairs) == 2 + 2 * 2 and all(e.prompt in prompts.filter(lang="zh").texts for e in pairs)


def test_refusals_to_avoid_are_in_each_prompts_language():
    prompts, _ = safety_split(["en", "zh"], validation=0, limit=3)
    pairs = refusal_pairs(prompts.filter(label="harmless"), refusals, seed=0)
    assert [q for q, _ in pairs] == prompts.filter(label="harmless").texts
    assert all(r in refusals(p.lang) for p, (_, r) in zip(prompts.filter(label="harmless"), pairs))
    assert pairs == refusal_pairs(prompts.filter(label="harmless"), refusals, seed=0)


def test_safety_split_keeps_validation_ids_out_of_training():
    train, val = safety_split(["en", "zh"], validation=3, limit=5)
    assert {p.label for p in val} == {"harmless"} and len(val) == 6
    assert not {p.id for p in val} & {p.id for p in train}
    assert len(train.filter(lang="zh", label="harmful")) == len(train.filter(lang="zh", label="harmless")) == 5
    assert {p.split for p in train} | {p.split for p in val} == {"scan"}  # the held-out split is the test set


def test_early_stop_keeps_the_last_weights_within_budget(tiny, monkeypatch):
    fp = fingerprint(tiny.model)
    config = TrainConfig(steps=6, lr=3e-2, batch_size=2, eval_every=2)
    # no false refusals before training, all of them at the first check: keep the starting weights
    monkeypatch.setattr(FalseRefusalStop, "false_refusals", lambda self, lm: float(bool(self.history)))
    patch = expand(tiny, NEURONS, ["en"], config, validation=1, limit=2, max_false_refusal=0.5, own_tokens=2)
    assert patch.meta["early_stopped"] and patch.meta["kept_step"] == 0 and patch.meta["steps"] == 2
    assert patch.meta["false_refusal_budget"] == 0.5
    monkeypatch.undo()
    with patched(tiny, patch):
        assert fingerprint(tiny.model) == fp
    assert fingerprint(tiny.model) == fp

    stop = FalseRefusalStop(NEURONS, safety_split(["en"], 1)[1], budget=0.5, every=2, max_new_tokens=2)
    stop.false_refusals = lambda lm: [0.0, 0.0, 0.0, 1.0][len(stop.history)]  # start, within, within, over
    stop.start(tiny)
    assert [stop(tiny), stop(tiny), stop(tiny)] == [False, False, True]
    assert stop.kept_step == 4 and [h["step"] for h in stop.history] == [0, 2, 4, 6] and stop.budget == 0.5


def test_a_model_that_starts_above_the_budget_may_not_get_worse(tiny):
    stop = FalseRefusalStop(NEURONS, safety_split(["en"], 1)[1], budget=0.1, every=2, max_new_tokens=2)
    stop.false_refusals = lambda lm: [0.4, 0.3, 0.4, 0.5][len(stop.history)]  # start above 0.1, then rises
    stop.start(tiny)
    assert stop.budget == 0.4 and [stop(tiny), stop(tiny), stop(tiny)] == [False, False, True]
    assert stop.kept_step == 4


@pytest.mark.parametrize("build", [lambda lm, ps: parallel_examples(lm, ps, ["en"]),
                                   lambda lm, ps: donor_examples(lm, ps, harmless_repeat=1)],
                         ids=["finetune", "train-donor"])
def test_harmless_replies_the_judge_calls_refusals_are_left_out(tiny, monkeypatch, build):
    prompts, _ = safety_split(["en"], validation=0, limit=2)
    harmless = prompts.filter(label="harmless").texts
    monkeypatch.setattr("neuronlab.training.finetune.generate_batch",
                        lambda lm, texts, **k: [refusals("en")[0], "Sure, here are three ideas."])
    pairs = build(tiny, prompts)
    assert [e for e in pairs if e[0] in harmless] == [(harmless[1], "Sure, here are three ideas.", True)]


def test_finetune_verb_writes_a_patch_that_changes_only_the_chosen_neurons(tiny, tmp_path, capsys):
    ref = NEURONS.save(tmp_path / "ss.json")
    out = tmp_path / "ss.safetensors"
    assert main(["finetune", "--model", "tiny-llama", "--neurons", str(ref), "--langs", "zh", "--replay-en",
                 "--limit", "2", "--validation", "1", "--eval-every", "2", "--max-false-refusal", "1",
                 "--steps", "4", "--lr", "3e-2", "--batch-size", "2", "--own-tokens", "3", "--avoid-refusal", "0.5",
                 "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    patch = Patch.load(out)
    assert patch.neurons == NEURONS and patch.meta["langs"] == ["zh", "en"] and patch.meta["steps"] == 4
    assert patch.meta["own_tokens"] == 3
    # the 2 harmless training prompts of each language were also trained not to open with a refusal
    assert patch.meta["avoided"] == 4 and patch.meta["train_config"]["avoid_weight"] == 0.5
    assert [h["step"] for h in patch.meta["history"]] == [0, 2, 4]

    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    allowed = {k: torch.zeros_like(v, dtype=torch.bool) for k, v in before.items()}
    for (layer, site), idx in NEURONS.grouped().items():
        for ws in tiny.arch.sites[site].weights:
            allowed[f"model.layers.{layer}.{ws.param}"].index_fill_(ws.dim, torch.as_tensor(idx + ws.offset), True)
    with patched(tiny, patch):
        after = tiny.model.state_dict()
        for key, value in after.items():
            assert torch.equal(value[~allowed[key]], before[key][~allowed[key]]), key  # bit-identical outside
        changed = {k for k, v in after.items() if not torch.equal(v, before[k])}
    assert changed >= {"model.layers.1.mlp.gate_proj.weight", "model.layers.3.mlp.down_proj.weight"}
    # the recipe in the metadata replays the training (how eval trains random-mask controls)
    train = retrainer(tiny, patch.meta)
    again = train(NEURONS)
    assert all(torch.equal(again.tensors[k], v) for k, v in patch.tensors.items())
    generated = []  # a second set reuses the training pairs: no more generation
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("neuronlab.training.expansion.generate_batch", lambda *a, **k: generated.append(1) or [])
        mp.setattr("neuronlab.training.expansion.FalseRefusalStop.false_refusals", lambda self, lm: 0.0)
        assert train(NEURONS).neurons == NEURONS and not generated
