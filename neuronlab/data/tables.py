"""Tables of records (prompt sets, bias items) as every data file holds them: JSON Lines or CSV, read with one
message style (``FileKind``, ``read_records``, ``file_format``), written atomically, and a content hash that
ignores the file format, key order and record order."""
from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from neuronlab.data.csvrows import CsvRowsError, csv_rows
from neuronlab.data.jsonl import JsonLinesError, json_lines
from neuronlab.errors import NeuronLabError, UnreadableText, decode_text
from neuronlab.files import write_atomic

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}  # file suffix -> format
Record = TypeVar("Record")


@dataclass(frozen=True)
class FileKind:
    """How one kind of data file reads and names itself in messages, e.g. prompt files."""

    error: type[NeuronLabError]  # what every problem raises
    name: str  # "prompt file"
    record: str  # "prompt": "duplicate prompt id"
    empty: str  # "no prompts found"
    schema: str  # the format in one sentence, quoted by messages
    required: Sequence[str]  # the CSV header's required columns
    hints: Mapping[str, str]  # appended to a JSON Lines problem, by ``JsonLinesError.kind``

    def at(self, source: str, line: int, problem: str) -> NeuronLabError:
        return self.error(f"{source}, line {line}: {problem}")


def read_records(content: str | bytes, fmt: str, source: str, kind: FileKind,
                 make: Callable[[dict, int], Record]) -> list[tuple[int, Record]]:
    """(line, ``make(row, line)``) for every row of a JSON Lines or CSV text, each record with an ``id`` and a
    ``lang`` that no other has together; every problem is one ``kind.error`` naming ``source`` (and the line)."""
    if fmt not in ("jsonl", "csv"):
        raise kind.error(f"{source}: unknown {kind.name} format {fmt!r} (accepted: jsonl, csv)")
    try:
        text = decode_text(content)
    except UnreadableText as e:
        if e.line is None:
            raise kind.error(f"{source}: not a {kind.name}: {e.problem}; a {kind.name} is {kind.schema}") from None
        raise kind.at(source, e.line, e.problem) from None
    out, seen = [], {}
    try:
        for line, row in (json_lines(text) if fmt == "jsonl" else csv_rows(text, kind.required)):
            record = make(row, line)
            key = (record.id, record.lang)
            if key in seen:
                raise kind.at(source, line, f"duplicate {kind.record} id {record.id!r} for lang {record.lang!r} "
                                            f"(first on line {seen[key]})")
            seen[key] = line
            out.append((line, record))
    except JsonLinesError as e:
        raise kind.at(source, e.line, e.problem + kind.hints.get(e.kind, "")) from None
    except CsvRowsError as e:
        raise kind.at(source, e.line, e.problem) from None
    if not out:
        raise kind.error(f"{source}: empty file, {kind.empty}; a {kind.name} is {kind.schema}")
    return out


def file_format(path: str | Path, kind: FileKind) -> tuple[Path, str]:
    """(path, "jsonl" or "csv") of a data file to read, or ``kind.error`` for an unknown suffix or a missing file."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise kind.error(f"{path}: unknown {kind.name} type {path.suffix or '(none)'!r} "
                         "(use .jsonl for JSON Lines or .csv)")
    if not path.is_file():
        raise kind.error(f"{kind.name} not found: {path}")
    return path, fmt


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
