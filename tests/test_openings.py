"""The openings metric of a user-defined function: ``opening_score`` (log P(reply opens with one of the given
openings), no generation) against refusal's score and a straightforward computation, ``opening_rates`` against
the score it counts from, and ``eval --function openings`` end to end on tiny-llama (French vs English replies),
as loaded and with the function's neurons switched off."""
import json
import math

import pytest
import torch

from neuronlab import Intervention, NeuronSet, intervene
from neuronlab.cli import main
from neuronlab.data.prompts import parse_prompts
from neuronlab.errors import NeuronLabError
from neuronlab.evaluation.functions import check_openings, opening_rates, openings_function
from neuronlab.evaluation.metrics import opening_score, refusal_openings, refusal_score
from neuronlab.experiments import heldout_prompts
from neuronlab.models.chat import chat_ids, text_ids
from neuronlab.neurons.sets import load_neuron_set
from tests.support.functions import LABELS, TOPICS, reply_language_file

OPENINGS = ("Bonjour", "Je", "Oui, bien sûr")  # of different lengths: one token short, a whole phrase
PROMPTS = [f"Reply in French, please: say something about {topic}." for topic in TOPICS[:3]] + ["Hi"]


def whole_score(lm, prompt: str, openings, interventions=()) -> float:
    """log Σ over ``openings`` of p(opening | chat context), each pair read whole in its own forward pass."""
    context, logps = chat_ids(lm, prompt), []
    with intervene(lm.model, list(interventions)), torch.inference_mode():
        for opening in openings:
            tail = text_ids(lm, opening)
            logp = lm.model(input_ids=torch.tensor([context + tail])).logits[0].float().log_softmax(-1)  # [seq, vocab]
            logps.append(sum(logp[len(context) - 1 + i, t].item() for i, t in enumerate(tail)))
    return torch.tensor(logps).logsumexp(-1).item()


def suppressed() -> list[Intervention]:
    return [Intervention(NeuronSet.from_indices(layer, "mlp", range(0, 128, 2)), "suppress") for layer in (1, 2)]


def test_opening_score_is_refusals_score_with_the_refusal_openings(tiny):
    for lang in ("en", "fr"):
        assert torch.equal(opening_score(tiny, PROMPTS, refusal_openings(lang), batch_size=3),
                           refusal_score(tiny, PROMPTS, lang, batch_size=3))


def test_opening_score_is_the_log_probability_of_any_opening(tiny):
    got = opening_score(tiny, PROMPTS, OPENINGS, batch_size=3)  # two batches, left-padded
    assert got.shape == (len(PROMPTS),)
    for prompt, g in zip(PROMPTS, got.tolist()):
        assert math.isclose(g, whole_score(tiny, prompt, OPENINGS), abs_tol=1e-4), prompt


def test_suppressing_neurons_moves_the_score_as_the_intervention_does(tiny):
    plain = opening_score(tiny, PROMPTS, OPENINGS)
    off = opening_score(tiny, PROMPTS, OPENINGS, suppressed())
    assert not torch.allclose(plain, off, atol=1e-3)
    for prompt, o in zip(PROMPTS, off.tolist()):
        assert math.isclose(o, whole_score(tiny, prompt, OPENINGS, suppressed()), abs_tol=1e-4), prompt


@pytest.fixture(scope="module")
def held():
    """The held-out prompts of the French vs English reply file: two per label."""
    return heldout_prompts(["en"], None, parse_prompts(reply_language_file(), "jsonl", labels=LABELS))


def middle_threshold(lm, prompts) -> float:
    """A probability between the second and third lowest scores of ``prompts``: some pass, some not."""
    every = sorted(opening_score(lm, prompts.texts, OPENINGS).tolist())
    return math.exp((every[1] + every[2]) / 2)


def test_opening_rates_count_the_prompts_whose_score_passes_the_threshold(tiny, held):
    threshold = middle_threshold(tiny, held)
    for ivs in ([], suppressed()):
        rates = opening_rates(tiny, held, ["en"], LABELS, OPENINGS, threshold, ivs)
        for label in LABELS:
            scores = opening_score(tiny, held.filter(label=label).texts, OPENINGS, ivs).tolist()
            block = rates["en"][label]
            assert block["n"] == 2 and block["hits"] == sum(math.exp(s) >= threshold for s in scores)
            assert block["hit_rate"] == block["hits"] / 2 and len(block["ci95"]) == 2
            assert math.isclose(block["mean_logp"], sum(scores) / 2, abs_tol=1e-5)
    plain = opening_rates(tiny, held, ["en"], LABELS, OPENINGS, threshold)
    assert 0 < sum(plain["en"][label]["hits"] for label in LABELS) < 4


def test_openings_are_checked_and_named_in_the_metric():
    assert check_openings(" Bonjour | Je\nOui, bien sûr\n\nJe ") == OPENINGS  # stripped, blanks dropped, once each
    assert "“Bonjour | Je | Oui, bien sûr” with probability ≥ 0.2" in openings_function(LABELS, OPENINGS, 0.2).metric
    for bad, fragment in (("", "give 1 to 50"), (" | \n", "give 1 to 50"), ("|".join(map(str, range(51))), "(got 51)"),
                          ("x" * 201, "longer than 200")):
        with pytest.raises(NeuronLabError, match=fragment):
            check_openings(bad)


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("openings") / "reply-language.jsonl"
    path.write_bytes(reply_language_file())
    return path


@pytest.fixture(scope="module")
def neurons(prompt_file, tmp_path_factory):
    """The function's neurons: a scan of the file's french vs english scan prompts."""
    out = tmp_path_factory.mktemp("scan")
    assert main(["scan", "--model", "tiny-llama", "--prompts", str(prompt_file), "--labels", ",".join(LABELS),
                 "--langs", "en", "--top-p", "0.1", "--no-cache", "--out", str(out)]) == 0
    return f"{out}/neurons.json#en"


def test_eval_scores_the_openings_as_loaded_and_with_the_neurons_off(tiny, held, prompt_file, neurons, capsys):
    threshold = middle_threshold(tiny, held)
    args = ["eval", "--function", "openings", "--model", "tiny-llama", "--prompts", str(prompt_file), "--labels",
            ",".join(LABELS), "--langs", "en", "--openings", "|".join(OPENINGS), "--threshold", repr(threshold)]
    assert main([*args, "--suppress", neurons, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["function"], doc["labels"], doc["openings"], doc["threshold"]) == \
        ("openings", list(LABELS), list(OPENINGS), threshold)
    assert set(doc["variants"]) == {"plain", "intervened"}
    for name, ivs in (("plain", []), ("intervened", [Intervention(load_neuron_set(neurons), "suppress")])):
        for label in LABELS:
            scores = opening_score(tiny, held.filter(label=label).texts, OPENINGS, ivs).tolist()
            block = doc["variants"][name]["en"][label]
            assert block["n"] == 2 and block["hits"] == sum(math.exp(s) >= threshold for s in scores)
            assert math.isclose(block["mean_logp"], sum(scores) / 2, abs_tol=1e-5)
    for label in LABELS:
        assert doc["change"]["en"][label] == doc["variants"]["intervened"]["en"][label]["hit_rate"] - \
            doc["variants"]["plain"]["en"][label]["hit_rate"]

    assert main(args) == 0  # as text: the metric, then one line per variant and language
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("the share of prompts whose reply opens with one of")
    assert lines[1].startswith("plain       en    french ") and "mean log p" in lines[1]


@pytest.mark.parametrize("extra, fragment", [
    (["--function", "openings", "--openings", " | "], "give 1 to 50 reply openings"),
    (["--function", "openings", "--openings", "x" * 201], "longer than 200 characters"),
    (["--function", "openings"], "--function openings needs --prompts FILE"),
    (["--openings", "Bonjour"], "--openings is for --function openings"),
    (["--function", "match", "--match", "le", "--threshold", "0.5"], "--threshold is for --function openings"),
    (["--function", "openings", "--openings", "Je", "--controls", "2"], "--controls: not available with --function "
                                                                         "openings"),
])
def test_bad_openings_inputs_are_one_line(prompt_file, extra, fragment, capsys):
    prompts = [] if extra == ["--function", "openings"] else ["--prompts", str(prompt_file)]
    assert main(["eval", "--model", "tiny-llama", "--labels", ",".join(LABELS), "--langs", "en", *prompts,
                 *extra]) == 2
    out, err = capsys.readouterr()
    assert not out and err.strip().count("\n") == 0 and fragment in err, err


def test_openings_need_a_prompt_file_too(capsys):
    assert main(["eval", "--function", "openings", "--openings", "Je", "--model", "tiny-llama",
                 "--labels", ",".join(LABELS)]) == 2
    assert "--function openings needs --prompts FILE" in capsys.readouterr().err
