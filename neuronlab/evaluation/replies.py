"""Every judged reply of an evaluation, saved as JSON Lines so a run can be re-judged without re-running it.

One line per reply: ``{"variant", "lang", "label", "id", "prompt", "reply", "refusal", "reply_lang"}``.
``variant`` names the run it came from (``effect``, ``baseline``, ``control seed 0``, ...).
``rejudge`` reads such a file back and judges each reply again with the current judge.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from neuronlab.data.jsonl import JsonLinesError, json_lines
from neuronlab.evaluation.judge import JudgeResult, judge
from neuronlab.evaluation.metrics import verdict_block

FIELDS = ("variant", "lang", "label", "id", "prompt", "reply", "refusal", "reply_lang")


class ReplyLog:
    """Appends judged replies to a JSONL file (created or emptied on open); a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")
        self.count = 0

    def write(self, row: dict) -> None:
        missing = [k for k in FIELDS if k not in row]
        if missing:
            raise ValueError(f"reply row lacks {', '.join(missing)}")
        self._file.write(json.dumps({k: row[k] for k in FIELDS}, ensure_ascii=False) + "\n")
        self.count += 1

    def __enter__(self) -> "ReplyLog":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


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
