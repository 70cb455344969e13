"""Progress reporting for long work: a callback ``progress(fraction, message)`` with 0 <= fraction <= 1."""
from __future__ import annotations

import sys
from collections.abc import Callable

Progress = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """The default callback: report nothing."""


def text_bar(stream=sys.stderr, width: int = 30) -> Progress:
    """A callback that draws a one-line text bar (for the command line)."""
    def report(fraction: float, message: str) -> None:
        filled = int(round(width * min(max(fraction, 0.0), 1.0)))
        end = "\n" if fraction >= 1.0 else ""
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} {message[:60]:<60}{end}")
        stream.flush()
    return report
