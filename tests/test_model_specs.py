"""Bad ``--model`` specs on the command line: exit code 2 and one line naming the spec, no traceback, no hang (a
hub id with no network or HF_HUB_OFFLINE set fails at once). And ``eval --controls 0``: no NaN, and it says the
random controls are off."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuronlab.cli import main
from neuronlab.models.tiny import byte_tokenizer, tiny_llama_config
from tests.support.messages import assert_clear

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> Path:
    """A folder of bad models: no config.json, a broken one, a .gguf of random bytes, a text file, ..."""
    root = tmp_path_factory.mktemp("specs")
    (root / "no-config").mkdir()
    (root / "no-config" / "model.safetensors").write_bytes(b"")
    (root / "broken-config").mkdir()
    (root / "broken-config" / "config.json").write_text("{not json")
    (root / "broken-config" / "model.safetensors").write_bytes(b"")
    (root / "list-config").mkdir()
    (root / "list-config" / "config.json").write_text("[1, 2]")
    (root / "list-config" / "model.safetensors").write_bytes(b"")
    (root / "no-weights").mkdir()
    tiny_llama_config(len(byte_tokenizer()), layers=1).save_pretrained(root / "no-weights")
    (root / "cut-weights").mkdir()
    tiny_llama_config(len(byte_tokenizer()), layers=1).save_pretrained(root / "cut-weights")
    (root / "cut-weights" / "model.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{\"a\"")
    byte_tokenizer().save_pretrained(root / "cut-weights")
    (root / "random.gguf").write_bytes(bytes(range(256)) * 16)
    (root / "empty.gguf").write_bytes(b"")
    (root / "notes.txt").write_text("not a model")
    (root / "weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (root / "folder.gguf").mkdir()
    return root


LOCAL = {  # spec (relative to the folder; None: as written): fragments of the one line
    "no-config": ["no config.json", "not a model folder", "accepted"],
    "broken-config": ["could not read its config", "not a valid JSON file"],
    "list-config": ["could not read its config", "model_type"],
    "no-weights": ["no *.safetensors weights", "accepted"],
    "cut-weights": ["loading failed", "cannot be read (damaged or cut short)"],
    "random.gguf": ["not a readable GGUF file"],
    "empty.gguf": ["not a readable GGUF file"],
    "missing.gguf": ["no such GGUF file"],
    "folder.gguf": ["no such GGUF file"],
    "notes.txt": ["a file, but not a .gguf", "accepted"],
    "weights.safetensors": ["a file, but not a .gguf"],
    "missing-folder": ["no such folder or file", "accepted"],
}
ODD = {  # specs as typed
    "demo-t@rget!": ["demo-t@rget!: no such folder or file", "built-in name (demo-target"],
    "tiny llama": ["tiny llama: no such folder or file"],
    "Tiny-Llama/": ["Tiny-Llama/: no such folder or file"],
    "demo-target\ttab": ["demo-target\ttab: no such folder or file"],
    "org/name/extra": ["org/name/extra: no such folder or file"],
    "/etc/passwd": ["/etc/passwd: a file, but not a .gguf"],  # absolute: true wherever the checkout is
    "../no-such-neuronlab-folder/x": ["../no-such-neuronlab-folder/x: no such folder or file"],
    "~nobody-neuronlab/model": ["no such folder or file", "no home folder for ~nobody-neuronlab"],
    "C:\\models\\x": ["no such folder or file"],
}


def one_line(code: int, err: str, name: str, fragments: list[str]) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert_clear(err.strip(), name, *fragments)


@pytest.mark.parametrize("spec", LOCAL)
def test_a_bad_local_model_exits_2_naming_it(spec, specs, capsys, monkeypatch):
    monkeypatch.setenv("NEURONLAB_CACHE", str(specs / "cache"))
    code = main(["chat", "--model", str(specs / spec), "--prompt", "hi", "--max-new-tokens", "1"])
    one_line(code, capsys.readouterr().err, spec, LOCAL[spec])


@pytest.mark.parametrize("spec", ODD)
def test_an_odd_name_exits_2_naming_it(spec, capsys):
    code = main(["chat", "--model", spec, "--prompt", "hi", "--max-new-tokens", "1"])
    one_line(code, capsys.readouterr().err, spec, ODD[spec])


@pytest.mark.parametrize("spec", ["", " ", "\t"])
def test_an_empty_spec_says_no_model_was_given(spec, capsys):
    code = main(["eval", "--model", spec])
    one_line(code, capsys.readouterr().err, "no model given", ["is empty", "accepted: a built-in name"])


def cli(*args: str, timeout: float, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | env
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "neuronlab", *args], cwd=ROOT, env=environment, timeout=timeout,
                          capture_output=True, text=True)
    return done, time.monotonic() - start


@pytest.mark.parametrize("env, fragments", [
    ({"HF_HUB_OFFLINE": "1"}, ["not in the local Hugging Face cache", "HF_HUB_OFFLINE is set"]),
    ({"HF_ENDPOINT": "http://127.0.0.1:9"}, ["huggingface.co cannot be reached", "not in the local cache"]),
], ids=["offline", "unreachable"])
@pytest.mark.parametrize("spec", ["neuronlab-tests/no-such-model", "no-such-neuronlab-model"])
def test_a_hub_id_without_network_fails_at_once(spec, env, fragments, tmp_path):
    done, seconds = cli("chat", "--model", spec, "--prompt", "hi", timeout=90, HF_HOME=str(tmp_path), **env)
    assert seconds < 60
    one_line(done.returncode, done.stderr, spec, fragments)
    assert not done.stdout


def test_eval_with_controls_off_says_so_and_prints_no_nan(tmp_path, capsys):
    (tmp_path / "s.json").write_text(json.dumps({"neurons": {"mlp": {"0": [1, 2, 3]}}}))
    base = ["eval", "--model", "tiny-llama", "--suppress", str(tmp_path / "s.json"), "--controls", "0",
            "--limit", "2", "--mc-questions", "2", "--max-new-tokens", "2"]
    assert main(base) == 0
    out, err = capsys.readouterr()
    assert "random controls off" in err and "nan" not in (out + err).lower(), (out, err)
    assert main([*base, "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["controls"] == {"seeds": [], "runs": []} and "effect" not in result
    assert "NaN" not in out and "Infinity" not in out and "random controls off" in err
