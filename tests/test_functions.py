"""A user-defined function end to end on the command line: two labels of an uploaded prompt file (French vs English
replies), a scan that contrasts them, and an evaluation that counts matching replies as loaded and with the
function's neurons switched off."""
import json
import re

import pytest

from neuronlab.cli import main
from neuronlab.data.prompts import load_prompts
from neuronlab.experiments import heldout_prompts
from neuronlab.models.generation import Sampling, generate_batch
from neuronlab.neurons.interventions import Intervention
from neuronlab.neurons.sets import load_neuron_set

PATTERN = r"\b(le|la|les|est|bonjour|merci)\b"
REQUESTS = ["the weather today", "your favourite book", "how to boil an egg", "a good morning routine",
            "the colour of the sky", "what a cat eats"]


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("function") / "reply-language.jsonl"
    rows = [{"id": f"{label}-{i}", "lang": "en", "label": label, "split": "scan" if i < 4 else "heldout",
             "text": f"Answer in {label.title()}: tell me about {request}."}
            for label in ("french", "english") for i, request in enumerate(REQUESTS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def scan_dir(prompt_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("scan")
    assert main(["scan", "--model", "tiny-llama", "--prompts", str(prompt_file), "--labels", "french,english",
                 "--langs", "en", "--top-p", "0.1", "--no-cache", "--out", str(out)]) == 0
    return out


def test_the_scan_contrasts_the_functions_labels(scan_dir):
    doc = json.loads((scan_dir / "neurons.json").read_text())
    assert doc["params"]["labels"] == ["french", "english"]
    assert doc["n_prompts"] == {"en": {"french": 4, "english": 4}}  # the scan split only
    assert len(load_neuron_set(f"{scan_dir}/neurons.json#en")) > 0


def test_eval_counts_matching_replies_as_loaded_and_with_the_neurons_off(tiny, prompt_file, scan_dir, capsys):
    ref = f"{scan_dir}/neurons.json#en"
    assert main(["eval", "--function", "match", "--model", "tiny-llama", "--prompts", str(prompt_file),
                 "--labels", "french,english", "--langs", "en", "--match", PATTERN, "--suppress", ref,
                 "--max-new-tokens", "6", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["function"] == "match" and doc["labels"] == ["french", "english"] and doc["pattern"] == PATTERN
    assert set(doc["variants"]) == {"plain", "intervened"}
    held = heldout_prompts(["en"], None, load_prompts(prompt_file, labels=("french", "english")))
    pattern = re.compile(PATTERN, re.IGNORECASE)
    for name, ivs in (("plain", []), ("intervened", [Intervention(load_neuron_set(ref), "suppress")])):
        for label in ("french", "english"):
            block = doc["variants"][name]["en"][label]
            replies = generate_batch(tiny, held.filter(label=label).texts, ivs, Sampling(max_new_tokens=6))
            assert block["n"] == 2 and block["hits"] == sum(bool(pattern.search(r)) for r in replies)
            assert block["hit_rate"] == block["hits"] / 2
    change = doc["change"]["en"]["french"]
    assert change == doc["variants"]["intervened"]["en"]["french"]["hit_rate"] - \
        doc["variants"]["plain"]["en"]["french"]["hit_rate"]


@pytest.mark.parametrize("extra, fragment", [
    (["--match", "("], "is not a regular expression"),
    (["--match", PATTERN, "--labels", "german,english"], "unknown label 'french'"),
    (["--match", PATTERN, "--labels", "french,french"], "two different labels"),
])
def test_a_bad_function_is_one_line(prompt_file, extra, fragment, capsys):
    args = ["eval", "--function", "match", "--model", "tiny-llama", "--prompts", str(prompt_file), "--langs", "en",
            *(extra if "--labels" in extra else ["--labels", "french,english", *extra])]
    try:
        code = main(args)
    except SystemExit as e:  # argparse's own exit for a bad flag value
        code = e.code
    assert code == 2
    out, err = capsys.readouterr()
    assert not out and fragment in err and err.strip().splitlines()[-1].count(fragment) == 1, err


def test_match_needs_prompts_and_a_pattern_and_labels_need_match(prompt_file, capsys):
    assert main(["eval", "--function", "match", "--model", "tiny-llama", "--langs", "en"]) == 2
    assert "--function match needs --prompts" in capsys.readouterr().err
    assert main(["eval", "--model", "tiny-llama", "--labels", "french,english", "--langs", "en"]) == 2
    assert "is for --function match" in capsys.readouterr().err


def test_a_bias_scan_contrasts_the_stereotype_and_anti_stereotype_sentences(tmp_path, prompt_file, capsys):
    out = tmp_path / "bias-scan"
    assert main(["scan", "--function", "bias", "--model", "tiny-llama", "--langs", "en,fr", "--top-p", "0.1",
                 "--no-cache", "--out", str(out)]) == 0
    doc = json.loads((out / "neurons.json").read_text())
    assert doc["params"]["labels"] == ["stereotype", "anti_stereotype"]
    assert doc["n_prompts"] == {lang: {"stereotype": 232, "anti_stereotype": 232} for lang in ("en", "fr")}
    assert len(load_neuron_set(f"{out}/neurons.json#en")) > 0
    assert main(["scan", "--function", "bias", "--model", "tiny-llama", "--prompts", str(prompt_file),
                 "--out", str(tmp_path / "x")]) == 2
    assert "--function bias scans the bundled bias items" in capsys.readouterr().err
