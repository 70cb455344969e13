"""Writing a table of records (prompt sets, bias items) the way every data file is written: JSON Lines or CSV,
atomically, and a content hash that ignores the file format, key order and record order."""
from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from neuronlab.files import write_atomic


def content_hash(fmt: str, rows: Iterable[Sequence[str]]) -> str:
    """sha256 hex of ``fmt`` and the rows' fields, the rows sorted."""
    blob = json.dumps([fmt, sorted(list(r) for r in rows)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    return write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_csv(path: str | Path, fields: Sequence[str], records: Iterable[dict]) -> Path:
    def write(tmp: Path) -> None:
        with tmp.open("x", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(fields))
            writer.writeheader()
            writer.writerows(records)
    return write_atomic(path, write)
