"""The one JSON Lines reader: prompt files, reply logs and bundled item files all go through it.

Lines are split on "\\n" only. ``str.splitlines()`` also breaks at U+2028, U+0085 and other characters that
a JSON string may hold unescaped (replies are written with ``ensure_ascii=False``), which cut a row in two.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

from neuronlab.errors import NeuronLabError, json_kind, json_problem


class JsonLinesError(NeuronLabError):
    """A line that is not one JSON object; ``kind`` is "json" (not JSON), "nesting" (nested too deep) or
    "object" (JSON, but not an object)."""

    def __init__(self, line: int, kind: str, problem: str):
        super().__init__(f"line {line}: {problem}")
        self.line, self.kind, self.problem = line, kind, problem


def json_lines(content: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of ``content``. Raises JsonLinesError."""
    for number, line in enumerate(content.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise JsonLinesError(number, "json", f"bad JSON: {json_problem(e)} (column {e.colno})") from None
        except RecursionError:
            raise JsonLinesError(number, "nesting", "bad JSON: brackets nested too deep") from None
        if not isinstance(row, dict):
            raise JsonLinesError(number, "object", f"not a JSON object but {json_kind(row)}")
        yield number, row
