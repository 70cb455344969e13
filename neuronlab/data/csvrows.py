"""The one CSV row reader: prompt files and bias files go through it (a header row, then one row a record)."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence

from neuronlab.errors import NeuronLabError


class CsvRowsError(NeuronLabError):
    """A CSV file that cannot be read as rows; ``line`` is where the problem starts."""

    def __init__(self, line: int, problem: str):
        super().__init__(f"line {line}: {problem}")
        self.line, self.problem = line, problem


PROBLEMS = (("end of data", 'a quoted text is not closed (a closing " is missing)'),
            ("field limit", 'a field is longer than the limit (is a quoted text left open?)'))


def csv_rows(content: str, required: Sequence[str]) -> Iterator[tuple[int, dict]]:
    """(line number, {column: cell}) for every non-blank row after the header, whose column names are
    stripped and lower-cased and must hold every name in ``required``. Raises CsvRowsError."""
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    header, start = None, 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            problem = next((words for words_of, words in PROBLEMS if words_of in str(e)), str(e))
            raise CsvRowsError(start, f"bad CSV: {problem}") from None
        line, start = start, reader.line_num + 1  # a quoted field may span several physical lines
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            missing = [c for c in required if c not in header]
            if missing:
                raise CsvRowsError(line, f"header is missing column(s) {', '.join(missing)} "
                                         f"(required: {', '.join(required)})")
        elif len(cells) > len(header):
            raise CsvRowsError(line, f"{len(cells)} fields but the header has {len(header)} "
                                     "(quote a text that contains commas)")
        else:
            yield line, dict(zip(header, cells))
