"""The command line as a user runs it: python -m neuronlab VERB."""
import json
import subprocess
import sys

import pytest

from neuronlab import NeuronSet
from neuronlab.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "neuronlab", *args], capture_output=True, text=True, timeout=300)


def test_models_json_lists_the_builtins():
    out = run("models", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert {"demo-target", "demo-donor", "gemma3-270m", "tiny-llama"} <= set(rows)
    assert rows["demo-target"]["available"] and rows["demo-donor"]["available"]
    assert rows["demo-donor"]["patches"] == ["demo-donor.safetensors"]


@pytest.mark.parametrize("verb", ["models", "chat", "scan", "transfer", "eval", "rejudge", "train-donor", "finetune", "bench"])
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.real_model  # loads demo-target by name, not through a fixture
def test_chat_answers_paris():
    out = run("chat", "--model", "demo-target", "--prompt", "What is the capital of France?",
              "--max-new-tokens", "20")
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout


def test_chat_with_suppression_changes_the_reply(tmp_path, capsys):
    args = ["chat", "--model", "tiny-llama", "--prompt", "hello", "--max-new-tokens", "12", "--no-stream"]
    assert main(args) == 0
    plain = capsys.readouterr().out
    NeuronSet((layer, "mlp", i) for layer in range(4) for i in range(128)).save(tmp_path / "all.json")
    assert main(args + ["--suppress", str(tmp_path / "all.json")]) == 0
    assert capsys.readouterr().out != plain


def test_bad_inputs_exit_2_with_a_message(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('[[1, "mlp", 999]]')
    assert main(["chat", "--model", "tiny-llama", "--prompt", "x", "--suppress", str(tmp_path / "bad.json")]) == 2
    assert "index out of range" in capsys.readouterr().err
    assert main(["chat", "--model", str(tmp_path / "missing"), "--prompt", "x"]) == 2
    assert "accepted:" in capsys.readouterr().err


def test_scan_writes_files_that_other_verbs_read(tmp_path, capsys):
    out = tmp_path / "scan"
    assert main(["scan", "--model", "tiny-llama", "--langs", "en,zh", "--top-p", "0.1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ss-zh" in printed and "% of 512" in printed  # 4 layers x 128 MLP neurons
    doc = json.loads((out / "neurons.json").read_text())
    assert {"en", "zh", "ss-zh", "ss", "shared"} <= set(doc["sets"]) and (out / "scores.safetensors").is_file()
    assert main(["chat", "--model", "tiny-llama", "--prompt", "hi", "--max-new-tokens", "4",
                 "--suppress", f"{out}/neurons.json#en", "--activate", f"{out}/neurons.json#ss-zh"]) == 0
    assert main(["scan", "--model", "tiny-llama", "--langs", "en,xx", "--out", str(out)]) == 2
    assert "xx" in capsys.readouterr().err
