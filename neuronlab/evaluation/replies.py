"""Every judged reply of an evaluation, saved as JSON Lines so a run can be re-judged without re-running it.

One line per reply: ``{"variant", "lang", "label", "id", "prompt", "reply", "refusal", "reply_lang"}``.
``variant`` names the run it came from (``effect``, ``baseline``, ``control seed 0``, ...).
``rejudge`` reads such a file back and judges each reply again with the current judge.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from neuronlab.data.jsonl import JsonLinesError, json_lines
from neuronlab.errors import json_kind
from neuronlab.evaluation.judge import JudgeResult, judge
from neuronlab.evaluation.metrics import verdict_block
from neuronlab.files import OutputError, check_output, sweep_stale, temp_path

FIELDS = ("variant", "lang", "label", "id", "prompt", "reply", "refusal", "reply_lang")


class ReplyLog:
    """Saves judged replies to a JSONL file as they come; a context manager.

    Replies go to a hidden temp file beside ``path`` (``.NAME.PID.HOST.RANDOM.tmp``), one line each, flushed
    at once; ``path`` itself is untouched while the run goes on. When the ``with`` block ends, normally or
    by an exception (Ctrl-C included), the rule is:

    - one reply or more were written: the temp file is renamed to ``path``, replacing any previous file
      (after an interruption it holds the replies made so far);
    - none: the previous ``path`` is kept as it was; if there was none, an empty file is created only when
      the block ended normally (a run that had nothing to reply to), nothing when it was interrupted.

    A process killed outright (SIGKILL) leaves ``path`` as it was and its replies in the temp file, until
    the next log of ``path`` is opened: it sweeps the temp files of dead writers (``files.sweep_stale``).
    The path is checked (``check_output``) when the log is opened, before any work.
    """

    def __init__(self, path: str | Path):
        self.path = check_output(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(self.path)
        self._tmp = temp_path(self.path)
        self._file = self._tmp.open("x", encoding="utf-8")
        self.count = 0

    def write(self, row: dict) -> None:
        missing = [k for k in FIELDS if k not in row]
        if missing:
            raise ValueError(f"reply row lacks {', '.join(missing)}")
        try:
            self._file.write(json.dumps({k: row[k] for k in FIELDS}, ensure_ascii=False) + "\n")
            self._file.flush()
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.count += 1

    def close(self, completed: bool = True) -> None:
        """Close the log and put its file in place by the rule above (``completed``: the run ended normally)."""
        if self._file.closed:
            return
        try:
            os.fsync(self._file.fileno())
            self._file.close()
            if self.count or (completed and not self.path.exists()):
                os.replace(self._tmp, self.path)
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        finally:
            self._file.close()
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "ReplyLog":
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(completed=kind is None)


def read_replies(path: str | Path) -> list[dict]:
    """The rows of a replies file; a clear error names the first bad line."""
    if not Path(path).is_file():
        raise ValueError(f"no replies file at {path}")
    rows = []
    try:
        numbered = list(json_lines(Path(path).read_text(encoding="utf-8")))
    except JsonLinesError as err:
        raise ValueError(f"{path}:{err.line}: {'' if err.kind == 'object' else 'not JSON: '}{err.problem}") from None
    for n, row in numbered:
        missing = [k for k in ("variant", "lang", "label", "reply") if k not in row]
        if missing:
            raise ValueError(f"{path}:{n}: a reply row needs {', '.join(missing)}")
        if wrong := [k for k in ("variant", "lang", "label", "reply") if not isinstance(row[k], str)]:
            raise ValueError(f"{path}:{n}: {', '.join(wrong)} must be text, not {json_kind(row[wrong[0]])}")
        rows.append(row)
    return rows


def rejudge(rows: Iterable[dict]) -> dict:
    """{variant: {lang: {label: Rate dict + reply_languages + changed}}} with every reply judged again;
    ``changed`` counts the replies whose verdict differs from the one saved."""
    verdicts: dict[tuple[str, str, str], list[JudgeResult]] = {}
    changed: Counter = Counter()
    for row in rows:
        key, v = (row["variant"], row["lang"], row["label"]), judge(row["reply"], row["lang"])
        verdicts.setdefault(key, []).append(v)
        changed[key] += "refusal" in row and bool(row["refusal"]) != v.refusal
    out: dict = {}
    for (variant, lang, label), items in verdicts.items():
        block = {**verdict_block(items), "changed": changed[variant, lang, label]}
        out.setdefault(variant, {}).setdefault(lang, {})[label] = block
    return out
