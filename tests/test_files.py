"""Atomic artifacts: every output is written whole or not at all, checked before work starts, and caches
rebuild a damaged entry instead of failing forever."""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from neuronlab.analysis.scan import run_scan
from neuronlab.cli import main
from neuronlab.data.prompts import bundled_prompts
from neuronlab.errors import NeuronLabError
from neuronlab.evaluation.replies import ReplyLog, read_replies
from neuronlab.files import (
    HOST,
    STALE_AFTER_S,
    OutputError,
    building_dir,
    check_output,
    sweep_stale,
    temp_path,
    write_atomic,
)
from neuronlab.neurons.patches import Patch
from tests.support.builders import scrambled_patch

ROW = {"variant": "effect", "lang": "en", "label": "harmful", "id": "h1", "prompt": "p", "reply": "r",
       "refusal": True, "reply_lang": "en"}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---- write_atomic ---------------------------------------------------------------------------------------

def test_write_atomic_writes_text_bytes_and_by_a_writer_creating_folders(tmp_path):
    assert write_atomic(tmp_path / "a" / "b.txt", "héllo").read_text(encoding="utf-8") == "héllo"
    assert write_atomic(tmp_path / "c.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    write_atomic(tmp_path / "d.txt", lambda tmp: tmp.write_text("by writer"))
    assert (tmp_path / "d.txt").read_text() == "by writer"
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "a") == []


def test_a_failing_writer_leaves_the_previous_content_and_no_temp_file(tmp_path):
    path = write_atomic(tmp_path / "out.json", "old")

    def writer(tmp: Path) -> None:
        tmp.write_text("half of the new")
        raise RuntimeError("writer broke")

    with pytest.raises(RuntimeError, match="writer broke"):
        write_atomic(path, writer)
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_a_full_disk_is_a_clean_error_and_leaves_nothing(tmp_path):
    path = write_atomic(tmp_path / "out.json", "old")

    def writer(tmp: Path) -> None:  # the file is begun, then the disk is full (/dev/full always is)
        tmp.write_text("the beginning")
        with open("/dev/full", "wb") as full:
            full.write(b"x" * 65536)

    with pytest.raises(OutputError, match=f"cannot write {path}: No space left on device"):
        write_atomic(path, writer)
    assert path.read_text() == "old" and leftovers(tmp_path) == []
    assert isinstance(OutputError("x"), NeuronLabError)


def test_dev_full_as_the_output_is_refused_and_left_alone():
    with pytest.raises(OutputError, match="/dev/full is not a regular file"):
        write_atomic("/dev/full", "data")
    assert Path("/dev/full").is_char_device()


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from neuronlab.files import write_atomic

    def writer(tmp):
        with open(tmp, "wb") as f:
            for _ in range(400):
                f.write(b"x" * 65536)
                f.flush()
                print("writing", flush=True)
                time.sleep(0.05)

    write_atomic(sys.argv[1], writer)
""")


def test_a_sigkilled_writer_leaves_the_previous_file_intact(tmp_path):
    path = write_atomic(tmp_path / "scores.safetensors", b"previous content")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        for _ in range(3):  # some of the new file is on disk
            assert proc.stdout.readline() == b"writing\n"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"previous content"
    others = [p for p in tmp_path.iterdir() if p != path]
    assert others and all(p.name.startswith(f".scores.safetensors.{proc.pid}.{HOST}.") and p.name.endswith(".tmp")
                          for p in others)
    assert others[0].stat().st_size >= 3 * 65536  # the killed writer's part of the new file
    write_atomic(tmp_path / "other.json", "x")  # another target's write leaves it alone
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == others
    assert write_atomic(path, b"next content").read_bytes() == b"next content"  # the next write sweeps it
    assert leftovers(tmp_path) == []


def stale_names(tmp_path: Path, target: str) -> dict[str, Path]:
    """Temp files of ``target`` as every kind of writer leaves them, by who wrote them."""
    gone = finished_pid()
    day_old = time.time() - STALE_AFTER_S - 60
    made = {
        "dead": f".{target}.{gone}.{HOST}.0123abcd.tmp",
        "dead build": f".{target}.{gone}.{HOST}.4567cdef.build",
        "this process": f".{target}.{os.getpid()}.{HOST}.89abcdef.tmp",
        "parent process": f".{target}.{os.getppid()}.{HOST}.00000000.tmp",
        "other host, fresh": f".{target}.{gone}.ffffffff.11111111.tmp",
        "other host, a day old": f".{target}.{gone}.ffffffff.22222222.tmp",
        "older name, fresh": f".{target}.{gone}.33333333.tmp",
        "older name, a day old": f".{target}.{gone}.44444444.tmp",
        "another target": f".{target}.x.{gone}.{HOST}.55555555.tmp",
        "not a temp name": f".{target}.{gone}.{HOST}.66666666.part",
    }
    paths = {}
    for who, name in made.items():
        path = tmp_path / name
        if who == "dead build":
            (path / "sub").mkdir(parents=True)
            (path / "sub" / "model.safetensors").write_text("half")
        else:
            path.write_text("partial")
        if "a day old" in who:
            os.utime(path, (day_old, day_old))
        paths[who] = path
    return paths


def finished_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait(timeout=30)
    return proc.pid


STALE = {"dead", "dead build", "other host, a day old", "older name, a day old"}


def test_temp_names_say_whose_they_are(tmp_path):
    name = temp_path(tmp_path / "a.json").name
    assert name.startswith(f".a.json.{os.getpid()}.{HOST}.") and name.endswith(".tmp")
    assert temp_path(tmp_path / "a.json").name != name
    assert temp_path(tmp_path / "entry", ".build").name.endswith(".build")
    with pytest.raises(ValueError, match="temp suffix"):
        temp_path(tmp_path / "a.json", ".part")


def test_sweep_removes_only_stale_temp_files_of_the_target(tmp_path):
    paths = stale_names(tmp_path, "out.json")
    removed = sweep_stale(tmp_path / "out.json")
    assert sorted(removed) == sorted(paths[w] for w in STALE)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for w, p in paths.items() if w not in STALE)
    assert sweep_stale(tmp_path / "out.json") == [] and sweep_stale(tmp_path / "missing" / "x") == []


@pytest.mark.parametrize("write", ["write_atomic", "building_dir", "ReplyLog"])
def test_every_writer_sweeps_stale_temp_files_of_its_target(tmp_path, write):
    target = tmp_path / "out"
    paths = stale_names(tmp_path, "out")
    if write == "write_atomic":
        write_atomic(target, "new")
    elif write == "building_dir":
        with building_dir(target, complete=lambda f: (f / "done").is_file()) as tmp:
            (tmp / "done").write_text("")
    else:
        with ReplyLog(target) as log:
            log.write(ROW)
    kept = sorted(p.name for w, p in paths.items() if w not in STALE)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == kept and target.exists()


def test_a_temp_file_of_a_running_writer_is_never_swept(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = tmp_path / f".out.json.{proc.pid}.{HOST}.0123abcd.tmp"
        ours = temp_path(tmp_path / "out.json")
        for path in (theirs, ours):
            path.write_text("in progress")
            os.utime(path, (0, 0))  # old, but its writer runs
        write_atomic(tmp_path / "out.json", "new")
        assert theirs.read_text() == ours.read_text() == "in progress"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    write_atomic(tmp_path / "out.json", "newer")
    assert not theirs.exists() and ours.exists()


# ---- check_output ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, kind, message", [
    ("{tmp}", "file", "{tmp} is a folder; give a file name"),
    ("{tmp}/afile", "dir", "{tmp}/afile is a file, not a folder"),
    ("{tmp}/afile/out.json", "file", "cannot write {tmp}/afile/out.json: {tmp}/afile is a file, not a folder"),
    ("/proc/x/out.json", "file", "cannot write /proc/x/out.json: cannot create folder /proc/x"),
    ("/proc/x", "dir", "cannot write /proc/x: cannot create folder /proc/x"),
    ("/dev/full", "file", "/dev/full is not a regular file"),
    ("/dev/full", "dir", "/dev/full is a file, not a folder"),
    ("", "file", "the output path is empty"),
])
def test_check_output_names_the_problem(tmp_path, target, kind, message):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError) as e:
        check_output(target.format(tmp=tmp_path), kind)
    assert str(e.value).startswith(message.format(tmp=tmp_path)) and "\n" not in str(e.value)


def test_check_output_accepts_new_and_existing_outputs_and_leaves_nothing(tmp_path):
    (tmp_path / "old.json").write_text("keep")
    for target, kind in [("old.json", "file"), ("new/deeper/out.json", "file"), ("scan", "dir"), (".", "dir")]:
        assert check_output(tmp_path / target, kind) == tmp_path / target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"] and (tmp_path / "old.json").read_text() == "keep"


# ---- what NeuronLab writes ------------------------------------------------------------------------------

def test_an_existing_patch_survives_a_failed_save(tiny, tmp_path, monkeypatch):
    path = scrambled_patch(tiny, seed=0).save(tmp_path / "p.safetensors")
    before = path.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("neuronlab.files.os.fsync", no_space)
    with pytest.raises(OutputError, match="No space left on device"):
        scrambled_patch(tiny, seed=1).save(path)
    assert path.read_bytes() == before and leftovers(tmp_path) == []
    monkeypatch.undo()
    assert Patch.load(path).meta == scrambled_patch(tiny, seed=0).meta


def test_a_truncated_scan_cache_part_is_rebuilt_with_a_warning(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONLAB_CACHE", str(tmp_path))
    prompts = bundled_prompts("en", split="scan").parallel_head(2)
    first = run_scan(tiny, prompts, ["en"])
    parts = sorted((tmp_path / "scans").glob("*.safetensors"))
    assert len(parts) == 2 and leftovers(tmp_path / "scans") == []
    parts[0].write_bytes(parts[0].read_bytes()[:100])  # a writer killed mid-way (as before atomic writes)
    parts[1].write_bytes(b"\x08" + b"\x00" * 7 + b"{}      ")  # readable, but none of the tensors a scan makes
    with pytest.warns(UserWarning) as caught:
        again = run_scan(tiny, prompts, ["en"])
    messages = " | ".join(str(w.message) for w in caught)
    assert str(parts[0]) in messages and str(parts[1]) in messages and "scanning again" in messages
    assert again.cache_hits == 0
    for lang, labels in first.importance.items():
        for label, scores in labels.items():
            for site, t in scores.items():
                assert again.importance[lang][label][site].equal(t)
    third = run_scan(tiny, prompts, ["en"])  # the rebuilt parts are good
    assert third.cache_hits == 2


def test_an_interrupted_reply_log_keeps_the_replies_so_far(tmp_path):
    path = tmp_path / "replies.jsonl"
    path.write_text(json.dumps({**ROW, "reply": "from an older run"}) + "\n")
    with pytest.raises(KeyboardInterrupt):
        with ReplyLog(path) as log:
            log.write(ROW)
            log.write({**ROW, "id": "h2"})
            assert "older run" in path.read_text()  # untouched while the run goes on
            raise KeyboardInterrupt
    assert [r["id"] for r in read_replies(path)] == ["h1", "h2"] and leftovers(tmp_path) == []


def test_a_reply_log_with_no_replies_keeps_the_previous_file(tmp_path):
    path = tmp_path / "replies.jsonl"
    path.write_text("previous\n")
    with pytest.raises(KeyboardInterrupt):
        with ReplyLog(path):
            raise KeyboardInterrupt
    with ReplyLog(path):
        pass
    assert path.read_text() == "previous\n" and leftovers(tmp_path) == []
    with ReplyLog(tmp_path / "new.jsonl"):  # a run with nothing to reply to still leaves its (empty) file
        pass
    assert (tmp_path / "new.jsonl").read_text() == ""
    with pytest.raises(KeyboardInterrupt):
        with ReplyLog(tmp_path / "never.jsonl"):
            raise KeyboardInterrupt
    assert not (tmp_path / "never.jsonl").exists()


def test_concurrent_builders_of_one_cache_folder_never_collide(tmp_path):
    folder = tmp_path / "entry"
    done = lambda f: (f / "model.safetensors").is_file()  # noqa: E731
    first, second = building_dir(folder, done), building_dir(folder, done)
    a, b = first.__enter__(), second.__enter__()
    assert a != b
    (a / "model.safetensors").write_text("a")
    (b / "model.safetensors").write_text("b")
    second.__exit__(None, None, None)
    first.__exit__(None, None, None)  # finishes last: the entry already there is kept
    assert (folder / "model.safetensors").read_text() == "b" and leftovers(tmp_path) == []
    with pytest.raises(RuntimeError):
        with building_dir(tmp_path / "other", done) as tmp:
            (tmp / "model.safetensors").write_text("half")
            raise RuntimeError("conversion failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


# ---- the CLI checks every output before loading anything -------------------------------------------------

def no_models(*args, **kwargs):
    raise AssertionError("a model was loaded before the output was checked")


@pytest.mark.parametrize("argv, message", [
    (["scan", "--model", "tiny-llama", "--out", "{tmp}/afile"], "{tmp}/afile is a file, not a folder"),
    (["transfer", "--donor", "tiny-llama", "--target", "tiny-llama", "--out", "{tmp}"], "{tmp} is a folder"),
    (["transfer", "--donor", "tiny-llama", "--target", "tiny-llama", "--out", "{tmp}/p.safetensors", "--search",
      "--curve", "/proc/x/curve.json"], "cannot write /proc/x/curve.json"),
    (["train-donor", "--model", "tiny-llama", "--out", "/dev/full"], "/dev/full is not a regular file"),
    (["finetune", "--model", "tiny-llama", "--neurons", "x.json", "--langs", "zh", "--out", "/proc/x/p.safetensors"],
     "cannot write /proc/x/p.safetensors"),
    (["eval", "--model", "tiny-llama", "--replies", "{tmp}"], "{tmp} is a folder"),
    (["ship", "--only", "scans", "--out", "{tmp}/afile"], "{tmp}/afile is a file, not a folder"),
])
def test_the_cli_checks_outputs_before_any_work(tmp_path, monkeypatch, capsys, argv, message):
    (tmp_path / "afile").write_text("x")
    for module in ("explore", "transfer", "train", "evaluate", "maintenance"):
        monkeypatch.setattr(f"neuronlab.cli.{module}.load_lm", no_models)
    monkeypatch.setattr("neuronlab.cli.maintenance.load_model", no_models)
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message.format(tmp=tmp_path)}") and err.count("\n") == 1
    assert (tmp_path / "afile").read_text() == "x"
