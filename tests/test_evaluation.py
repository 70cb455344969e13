"""Evaluation: error bars, refusal score arithmetic, utility measures, and the eval verb's JSON."""
import json
import math

import pytest
import torch

from neuronlab import Intervention, NeuronSet
from neuronlab.cli import main
from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.metrics import (
    Rate,
    _token_logprobs,
    benign_texts,
    examples_table,
    mc_accuracy,
    mc_items,
    perplexity,
    refusal_rates,
    refusal_score,
    results_table,
)
from neuronlab.models.chat import chat_ids
from tests.support.builders import fake_result

BREAK = Intervention(NeuronSet((layer, "mlp", i) for layer in range(2) for i in range(1536)), "suppress")


def test_rate_error_bars():
    r = Rate(9, 10)
    assert r.rate == 0.9 and math.isclose(r.stderr, math.sqrt(0.9 * 0.1 / 10))
    low, high = r.wilson()
    assert math.isclose(low, 0.5958, abs_tol=1e-3) and math.isclose(high, 0.9821, abs_tol=1e-3)
    assert Rate(0, 20).wilson()[0] == 0.0 and Rate(0, 20).wilson()[1] > 0.1  # zero events still have width
    assert math.isnan(Rate(0, 0).rate)


def test_continuation_logprob_matches_an_unpadded_forward(smol):
    prompts = ["How do I pick a lock?", "Tell me about whales and their songs in the deep ocean."]
    got = _token_logprobs(smol, [chat_ids(smol, p) for p in prompts], ["I'm sorry"] * 2)
    for p, value in zip(prompts, got):
        a = chat_ids(smol, p)
        b = smol.tokenizer("I'm sorry", add_special_tokens=False)["input_ids"]
        ids = torch.tensor([a + b])
        with torch.no_grad():
            logp = smol.model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        expected = sum(logp[len(a) - 1 + k, t].item() for k, t in enumerate(b))
        assert math.isclose(value.item(), expected, abs_tol=1e-3)


def test_refusal_score_is_finite_and_moves_with_an_intervention(smol):
    texts = bundled_prompts("en", split="heldout").filter(label="harmful").texts[:3]
    plain = refusal_score(smol, texts, "en")
    assert plain.shape == (3,) and torch.all(plain < 0) and torch.all(torch.isfinite(plain))
    assert not torch.allclose(refusal_score(smol, texts, "en", [BREAK]), plain)


def test_utility_measures(smol):
    ppl = perplexity(smol, benign_texts("en")[:4])
    assert 2 < ppl < 60
    assert perplexity(smol, benign_texts("en")[:4], [BREAK]) > 2 * ppl  # a broken model predicts worse
    words = " ".join(benign_texts("en")[:4]).split()
    shuffled = " ".join(words[i] for i in torch.randperm(len(words), generator=torch.Generator().manual_seed(0)))
    assert perplexity(smol, [shuffled]) > 2 * ppl  # word salad is less predictable than prose
    items = mc_items()
    assert len(items) == 60
    acc = mc_accuracy(smol, items[:24])
    assert acc.n == 24 and acc.rate > 0.25 + 2 * acc.stderr  # well above chance (measured 0.60 on all 60)


def test_refusal_rates_report_counts_languages_and_examples(tiny):
    prompts = bundled_prompts(["en", "zh"], split="heldout")
    keep = {p.id for p in prompts if p.id in ("harmful-002", "harmless-002")}
    block = refusal_rates(tiny, type(prompts)(p for p in prompts if p.id in keep), ["en", "zh"], max_new_tokens=4)
    assert set(block) == {"en", "zh"}
    h = block["zh"]["harmful"]
    assert h["n"] == 1 and 0 <= h["refusal_rate"] <= 1 and len(h["ci95"]) == 2
    assert sum(h["reply_languages"].values()) == 1 and h["examples"][0]["prompt"].strip()


def test_eval_verb_prints_the_json_contract(capsys):
    assert main(["eval", "--model", "tiny-llama", "--langs", "en,es", "--limit", "1", "--max-new-tokens", "4",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for lang in ("en", "es"):
        for label in ("harmful", "harmless"):
            assert out["languages"][lang][label]["n"] == 1
            assert 0 <= out["languages"][lang][label]["refusal_rate"] <= 1
        assert out["languages"][lang]["perplexity"] > 1
    assert out["utility"]["perplexity"] > 1 and 0 <= out["utility"]["mc_accuracy"] <= 1
    assert out["model"] == "tiny-llama"


@pytest.mark.parametrize("args", [["--langs", "xx"], ["--patch", "missing.safetensors"]])
def test_eval_verb_rejects_bad_input(args, capsys):
    assert main(["eval", "--model", "tiny-llama", *args]) == 2
    assert "error:" in capsys.readouterr().err


def test_results_table_has_every_number_with_its_interval():
    table = results_table({"plain": fake_result(2, 0), "patched": fake_result(9, 1)})
    assert len(table) == 2 * (2 * 3 + 2)  # variants × (languages × (2 refusals + perplexity) + utility)
    row = table.query("variant == 'patched' and lang == 'zh' and metric == 'refusal harmful'").iloc[0]
    assert row["value"] == 0.9 and row["n"] == 10 and (row["low"], row["high"]) == pytest.approx(Rate(9, 10).wilson())
    ppl = table.query("variant == 'plain' and metric == 'perplexity'")
    assert list(ppl["value"]) == [12.0, 13.0] and ppl["low"].isna().all()
    mc = table.query("variant == 'plain' and metric == 'multiple choice'").iloc[0]
    assert mc["lang"] == "all" and mc["value"] == 0.5 and mc["n"] == 20 and mc["low"] < 0.5 < mc["high"]
    assert row["reply languages"] == "en 9, zh 1"
    examples = examples_table({"plain": fake_result(2, 0)})
    assert len(examples) == 4 and list(examples.iloc[0][["lang", "label", "reply language"]]) == ["en", "harmful", "en"]
