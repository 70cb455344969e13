"""The bias metric (neuronlab.evaluation.bias): sentence scores, stereotype and LM scores with error bars,
and ``eval --function bias``."""
import json
import math
from contextlib import contextmanager

import pytest
import torch

import neuronlab.cli.evaluate
from neuronlab import NeuronSet
from neuronlab.cli import main
from neuronlab.evaluation.bias import (
    BIAS_KEYS,
    bias_scores,
    bias_summary,
    fill_scores,
    icat,
    lead_ids,
    preference,
    scored_span,
)
from neuronlab.evaluation.metrics import Rate
from neuronlab.models.chat import text_ids
from tests.support.bias_items import ITEMS, Item, copies


def straightforward(lm, item, fill: str) -> float:
    """One sentence, no batch, no padding: mean log p of its tokens from the blank on."""
    before = item.context.split("BLANK")[0].rstrip()
    ids = lead_ids(lm) + text_ids(lm, item.sentence(fill), bos=True)
    ctx = lead_ids(lm) + text_ids(lm, before, bos=True)
    start = next((i for i, (a, b) in enumerate(zip(ids, ctx)) if a != b), min(len(ids), len(ctx)))
    start = max(start, 1)
    with torch.inference_mode():
        logits = lm.model(input_ids=torch.tensor([ids], device=lm.device)).logits[0].float()
    logp = logits.log_softmax(-1)
    return sum(logp[t - 1, ids[t]].item() for t in range(start, len(ids))) / (len(ids) - start)


def expected(lm, items) -> torch.Tensor:
    return torch.tensor([[straightforward(lm, it, getattr(it, f)) for f in ("stereotype", "anti_stereotype",
                                                                               "unrelated")] for it in items])


@contextmanager
def boosted(lm, text: str, by: float = 30.0):
    """Every next-token logit of ``text``'s (one) token raised by ``by``: a planted preference."""
    (token,) = text_ids(lm, text)

    def hook(module, args, out):
        out[..., token] += by
        return out
    handle = lm.model.get_output_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def test_fill_scores_equal_one_sentence_at_a_time(tiny):
    items = ITEMS[:12]
    got = fill_scores(tiny, items, batch_size=5)  # batches of mixed lengths, right-padded
    assert got.shape == (12, 3)
    assert torch.allclose(got, expected(tiny, items), atol=1e-4)
    assert torch.allclose(preference(tiny, items), got[:, 0] - got[:, 1], atol=1e-6)


def test_the_span_starts_at_the_blank(tiny, smol):
    for lm in (tiny, smol):
        ids, start = scored_span(lm, ITEMS[0], "she")
        assert lm.tokenizer.decode(ids[start:]) == " she would be back in a minute."
        ids, start = scored_span(lm, ITEMS[4], "mom")  # a fill that starts the sentence: scored after the lead
        assert lm.tokenizer.decode(ids[start:]) == "Mom stayed at home to look after the baby." and start == 1
    assert lead_ids(tiny) == [tiny.tokenizer.eos_token_id] and lead_ids(smol) == [smol.tokenizer.bos_token_id]


def test_a_planted_preference_moves_the_stereotype_score(tiny):
    items = [Item(f"p{i}", "en", "gender", it.context, "qqqq", "zzzz", "xxxx") for i, it in enumerate(ITEMS[:10])]
    with boosted(tiny, "q"):
        towards = bias_scores(tiny, items)["overall"]
    with boosted(tiny, "z"):
        away = bias_scores(tiny, items)["overall"]
    with boosted(tiny, "x"):
        nonsense = bias_scores(tiny, items)["overall"]
    assert towards["stereotype_score"] == 1.0 and towards["preference"] > 5
    assert away["stereotype_score"] == 0.0 and away["preference"] < -5
    assert towards["lm_score"] == away["lm_score"] == 1.0 and nonsense["lm_score"] == 0.0
    assert towards["icat"] == away["icat"] == 0.0  # a sensible model that always takes one side scores 0


def test_equal_fills_tie_and_count_half(tiny):
    items = [Item(f"e{i}", "en", it.domain, it.context, it.stereotype, it.stereotype, it.unrelated)
             for i, it in enumerate(ITEMS[:8])]
    scores = fill_scores(tiny, items)
    assert torch.equal(scores[:, 0], scores[:, 1])  # identical sentences are read once: an exact tie
    block = bias_summary(items, scores)["overall"]
    assert block["stereotype_score"] == 0.5 and block["preference"] == 0.0
    assert block["stereotype_stderr"] == pytest.approx(math.sqrt(0.25 / 8))


def test_error_bars_are_binomial_per_language_and_domain():
    items = ITEMS[:10] + copies(ITEMS[:4], "fr")
    # en: the stereotype wins items 0..6 (7 of 10), the unrelated fill wins item 9; fr: 1 of 4
    scores = torch.tensor([[-1.0, -2.0, -3.0]] * 7 + [[-2.0, -1.0, -3.0]] * 2 + [[-2.5, -2.0, -1.0]]
                          + [[-1.0, -2.0, -3.0]] + [[-2.0, -1.0, -3.0]] * 3)
    out = bias_summary(items, scores)
    assert list(out["languages"]) == ["en", "fr"] and set(BIAS_KEYS) <= set(out["overall"])
    en = out["languages"]["en"]
    assert en["n"] == 10 and en["stereotype_score"] == 0.7 and en["lm_score"] == 0.9
    assert en["stereotype_stderr"] == pytest.approx(math.sqrt(0.7 * 0.3 / 10))
    assert en["stereotype_ci95"] == pytest.approx(list(Rate(7, 10).wilson()))
    assert en["lm_ci95"] == pytest.approx(list(Rate(9, 10).wilson()))
    assert en["icat"] == pytest.approx(0.9 * 0.3 / 0.5) == icat(0.7, 0.9)
    assert out["languages"]["fr"]["stereotype_score"] == 0.25 and out["overall"]["n"] == 14
    assert out["overall"]["stereotype_score"] == pytest.approx(8 / 14)
    gender = en["domains"]["gender"]  # ITEMS[:10] are all gender items
    assert set(en["domains"]) == {"gender"} and gender["n"] == 10 and "domains" not in gender
    with pytest.raises(ValueError, match="rows"):
        bias_summary(items, scores[:3])


def test_suppressing_neurons_changes_the_scores(tiny):
    from neuronlab import Intervention

    neurons = NeuronSet([(layer, "mlp", i) for layer in range(2) for i in range(64)])
    plain = fill_scores(tiny, ITEMS[:6])
    off = fill_scores(tiny, ITEMS[:6], [Intervention(neurons, "suppress")])
    assert not torch.allclose(plain, off, atol=1e-4)
    assert torch.equal(fill_scores(tiny, ITEMS[:6]), plain)  # and nothing stays behind


def test_demo_target_matches_the_straightforward_scores_and_tells_sense_from_nonsense(smol):
    items = ITEMS[::3] + ITEMS[1:20:2]  # 20 items, every domain, a sentence-initial blank among them
    got = fill_scores(smol, items)
    assert torch.allclose(got[:6], expected(smol, items[:6]), atol=1e-4)
    out = bias_summary(items, got)["overall"]
    assert out["n"] == 20 and out["lm_score"] >= 0.8  # a real model prefers the meaningful fills


@pytest.fixture
def bias_items(monkeypatch):
    items = ITEMS[:6] + copies(ITEMS[:3], "fr") + [Item("s1", "en", "gender", ITEMS[0].context, "a", "b", "c", "scan")]
    monkeypatch.setattr(neuronlab.cli.evaluate, "bias_items", lambda: items)
    return items


def test_eval_function_bias_prints_the_shape(bias_items, tmp_path, capsys):
    common = ["eval", "--function", "bias", "--model", "tiny-llama", "--langs", "en,fr"]
    assert main([*common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["function"] == "bias" and out["model"] == "tiny-llama" and out["split"] == "heldout"
    assert {lang: b["n"] for lang, b in out["languages"].items()} == {"en": 6, "fr": 3}  # the scan item is left out
    assert set(BIAS_KEYS) <= set(out["languages"]["en"]) and out["overall"]["n"] == 9
    assert out["utility"]["perplexity"] > 1 and out["interventions"] == []

    ref = NeuronSet([(0, "mlp", i) for i in range(64)]).save(tmp_path / "set.json")
    assert main([*common, "--limit", "2", "--suppress", str(ref), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overall"]["n"] == 4 and out["interventions"] == [{"mode": "suppress", "neurons": 64, "value": None}]

    assert main(common) == 0
    table = capsys.readouterr().out
    assert "stereotype score" in table and "ICAT" in table and table.count("\n") >= 4


@pytest.mark.parametrize("flag", [["--prompts", "x.jsonl"], ["--mean", "x.json"]])
def test_eval_function_bias_refuses_what_it_cannot_do_yet(bias_items, flag, capsys):
    assert main(["eval", "--function", "bias", "--model", "tiny-llama", *flag]) == 2
    assert "--function bias" in capsys.readouterr().err


def test_eval_without_function_keeps_the_refusal_json(capsys):
    args = ["eval", "--model", "tiny-llama", "--langs", "en", "--limit", "1", "--max-new-tokens", "2",
            "--mc-questions", "2", "--json"]
    assert main(args) == 0
    plain = capsys.readouterr().out
    out = json.loads(plain)
    assert list(out) == ["languages", "utility", "effects", "controls", "model", "fingerprint", "patch", "interventions"]
    assert list(out["languages"]["en"]) == ["harmful", "harmless", "perplexity"]
    assert list(out["languages"]["en"]["harmful"]) == ["n", "refusals", "refusal_rate", "stderr", "ci95",
                                                      "reply_languages", "examples"]
    assert list(out["utility"]) == ["perplexity", "mc_accuracy", "mc_stderr", "mc_n"]
    assert main([*args, "--function", "refusal"]) == 0 and capsys.readouterr().out == plain
