"""Every file NeuronLab writes goes through here: written whole or not at all, and checked before work starts.

``write_atomic`` writes a temporary file beside the target (a unique name: ``.NAME.PID.HOST.RANDOM.tmp``),
syncs it to disk and renames it over the target, so a reader (or a later run) sees the previous content or
the new one, never a fragment, even if the writer is killed. ``check_output`` says, before a long job starts,
whether its output can be written. ``building_dir`` does the same for a folder that several processes
may build at once (a model cache entry). Every failure is a ``NeuronLabError`` naming the path.

A writer killed outright (SIGKILL, power loss) leaves its temp file behind; ``sweep_stale`` removes those of
one target, and every writer here calls it first: a temp file whose process is gone (same host, pid not
running), or, where the pid cannot be checked (another host sharing the folder, an older name without a
host), one untouched for ``STALE_AFTER_S``. A temp file of a running process is never removed.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from neuronlab.errors import NeuronLabError

Writer = Callable[[Path], object]


class OutputError(NeuronLabError):
    """An output that cannot be written (a folder where a file is meant, no permission, a full disk, ...)."""


STALE_AFTER_S = 24 * 3600  # a temp file whose owner cannot be checked is stale once untouched this long
TEMP_SUFFIXES = (".tmp", ".build")
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]  # which machine's pids a name holds


def temp_path(path: str | Path, suffix: str = ".tmp") -> Path:
    """A fresh name beside ``path`` that no other process or thread picks: hidden, ``.NAME.PID.HOST.RANDOM``
    + ``suffix`` (``.tmp`` or ``.build``), so ``sweep_stale`` can tell whose it is."""
    if suffix not in TEMP_SUFFIXES:
        raise ValueError(f"a temp suffix is one of {TEMP_SUFFIXES}, not {suffix!r}")
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{HOST}.{secrets.token_hex(4)}{suffix}")


def _running(pid: int) -> bool | None:
    """Whether process ``pid`` of this machine runs (a zombie counts); None where that cannot be told."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OSError, OverflowError, ValueError):
        return None
    return True


def _last_touched(entry: Path) -> float:
    """The newest mtime of ``entry`` and, for a folder, of everything in it."""
    newest = entry.lstat().st_mtime
    if entry.is_dir() and not entry.is_symlink():
        for root, dirs, files in os.walk(entry):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                except OSError:
                    pass
    return newest


def _stale(entry: Path, pid: int, host: str | None) -> bool:
    running = _running(pid) if host == HOST else None
    if running is not None:
        return not running
    try:
        return time.time() - _last_touched(entry) > STALE_AFTER_S
    except OSError:
        return False


def sweep_stale(path: str | Path) -> list[Path]:
    """Remove the temp files and folders that writers of ``path`` left behind when they were killed (see the
    module's docstring for which count as stale); those of other targets are left alone. Never raises;
    returns what it removed."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)(?:\.([0-9a-f]{{8}}))?\.[0-9a-f]{{8}}"
                      rf"(?:{'|'.join(re.escape(s) for s in TEMP_SUFFIXES)})")
    removed = []
    try:
        entries = [Path(e.path) for e in os.scandir(path.parent) if pattern.fullmatch(e.name)]
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not _stale(entry, int(match[1]), match[2]):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            try:
                entry.unlink()
            except OSError:
                pass
        if not os.path.lexists(entry):
            removed.append(entry)
    return removed


def _reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def _probe(folder: Path, path: Path) -> None:
    """Create and remove a file in ``folder`` (os.access is wrong for root and for read-only mounts)."""
    probe = temp_path(folder / "probe")
    sweep_stale(probe.with_name("probe"))
    try:
        probe.open("xb").close()
    except OSError as e:
        raise OutputError(f"cannot write {path}: folder {folder} is not writable ({_reason(e)})") from None
    probe.unlink(missing_ok=True)


def _check_kind(path: Path, kind: str) -> Path:
    if kind == "file" and path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name (e.g. {path / 'out'})")
    if path.exists() and kind == "dir" and not path.is_dir():
        raise OutputError(f"{path} is a file, not a folder; give a folder name")
    if path.exists() and kind == "file" and not path.is_file():
        raise OutputError(f"{path} is not a regular file (a device or pipe?); give a file name")
    return path


def check_output(path: str | Path, kind: str = "file") -> Path:
    """Check, before any work, that ``path`` can be written as a ``kind`` ("file" or "dir"): not a folder
    where a file is meant (nor a file where a folder is), not a device or pipe, its folder existing or
    creatable, and writable. Creates nothing that stays. Returns the path; raises OutputError."""
    if kind not in ("file", "dir"):
        raise ValueError(f"kind is 'file' or 'dir', not {kind!r}")
    if not str(path).strip():
        raise OutputError("the output path is empty; give a file or folder name")
    if kind == "file" and str(path).endswith(("/", os.sep)):
        raise OutputError(f"{path} names a folder; give a file name")
    path = _check_kind(Path(path), kind)
    folder = path if kind == "dir" else path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {path}: {existing} is a file, not a folder")
    if existing != folder:
        missing = folder
        while missing.parent != existing:
            missing = missing.parent
        try:
            missing.mkdir()  # the one folder made here is removed again below
        except OSError as e:
            raise OutputError(f"cannot write {path}: cannot create folder {missing} ({_reason(e)})") from None
        missing.rmdir()
    _probe(existing, path)
    return path


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    try:  # makes the rename durable; not every file system can sync a folder
        _sync(folder)
    except OSError:
        pass


def write_atomic(path: str | Path, data: str | bytes | Writer, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text, bytes, or a function that writes the file it is given) to ``path`` atomically:
    a temp file beside it, synced, then renamed over it. If anything fails (or the process dies) the
    previous content of ``path`` stays and no temp file is left (a killed process leaves its hidden temp
    file, never a partial ``path``; the next write of ``path`` sweeps it). Creates missing parent folders.
    Returns the path; an OSError becomes an OutputError naming the path."""
    path = _check_kind(Path(path), "file")
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(path)
        if callable(data):
            data(tmp)
        else:
            content = data.encode(encoding) if isinstance(data, str) else data
            with tmp.open("xb") as f:
                f.write(content)
        _sync(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_reason(e)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _sync_folder(path.parent)
    return path


@contextmanager
def building_dir(folder: str | Path, complete: Callable[[Path], bool]) -> Iterator[Path]:
    """Build ``folder`` (a cache entry) in a fresh temp folder beside it, yielded, then rename it into place.
    Concurrent builders never share a temp folder; the first to finish wins: if ``folder`` is already there
    and ``complete(folder)``, the new build is dropped (an incomplete leftover is replaced). On an error the
    temp folder is removed and ``folder`` is left as it was. Stale temp folders of killed builders of
    ``folder`` are swept first."""
    folder = Path(folder)
    tmp = temp_path(folder, ".build")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(folder)
    tmp.mkdir()
    try:
        yield tmp
        if folder.exists() and not complete(folder):
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder.exists() and complete(folder)):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
