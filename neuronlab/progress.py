"""Progress reporting for long work: a callback ``progress(fraction, message)`` with 0 <= fraction <= 1.

A job reports one overall fraction across all its phases (``span`` maps a phase's own 0..1 into its share
of the job) and a plain-language label of what it is doing now. A ``Tracker`` wraps such a callback for
display: it keeps the fraction from going back, times the job and estimates the time left.

A *heartbeat* is how a front end stops long work between forward passes: ``with heartbeat(fn):`` makes every
``beat()`` in this context call ``fn(note)``, and ``fn`` may raise to end the work (a hosted model beats at
each forward pass and while it waits for another caller; see ``models.host``).
"""
from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate

Progress = Callable[[float, str], None]
MIN_FRACTION = 0.05  # below this, an estimate of the time left is a guess: none is shown
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "ko": "Korean", "th": "Thai", "bn": "Bengali",
                  "sw": "Swahili", "ne": "Nepali", "es": "Spanish", "fr": "French", "de": "German"}


def no_progress(fraction: float, message: str) -> None:
    """The default callback: report nothing."""


_HEARTBEAT: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("neuronlab_heartbeat",
                                                                                          default=None)


@contextmanager
def heartbeat(fn: Callable[[str], None]) -> Iterator[None]:
    """Call ``fn(note)`` at every ``beat(note)`` of this context during the block (``note``: "" while working,
    a sentence while waiting for something); ``fn`` raising stops the work where it beat."""
    token = _HEARTBEAT.set(fn)
    try:
        yield
    finally:
        _HEARTBEAT.reset(token)


def beating() -> bool:
    """Whether a heartbeat is set in this context."""
    return _HEARTBEAT.get() is not None


def beat(note: str = "") -> None:
    """A point where long work may be stopped: calls this context's heartbeat, if any."""
    if (fn := _HEARTBEAT.get()) is not None:
        fn(note)


def language_name(code: str) -> str:
    """"English" for "en"; an unknown code as it is."""
    return LANGUAGE_NAMES.get(code, code)


def span(progress: Progress, start: float, end: float, prefix: str = "") -> Progress:
    """A callback for one phase: its fraction f becomes start + (end - start)·f of the whole job; ``prefix``
    goes before its messages."""
    return lambda f, m: progress(start + (end - start) * min(max(f, 0.0), 1.0), f"{prefix}{m}")


def duration(seconds: float) -> str:
    """"8 s", "45 s", "2 min 05 s", "1 h 03 min"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def about(seconds: float) -> str:
    """A rounded duration for an estimate: "about 20 s", "about 3 min"."""
    if seconds < 10:
        return "a few seconds"
    if seconds < 90:
        return f"about {5 * round(seconds / 5)} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Work:
    """How big a piece of model work is: prompt forward passes (chat-templated prompts), greedy tokens
    generated (summed over prompts) and tokens of plain text scored. ``units`` weighs them in prompt-token
    equivalents with costs measured on SmolLM2-135M on a CPU (a greedy token of a batch of 8 costs about
    12 prompt tokens; a templated prompt is about 45 tokens); ``presets.Costs`` measures them per model."""

    prompts: float = 0
    new_tokens: float = 0
    text_tokens: float = 0

    def __add__(self, other: Work) -> Work:
        return Work(self.prompts + other.prompts, self.new_tokens + other.new_tokens,
                    self.text_tokens + other.text_tokens)

    def __mul__(self, times: float) -> Work:
        return Work(self.prompts * times, self.new_tokens * times, self.text_tokens * times)

    def units(self) -> float:
        return 45 * self.prompts + 12 * self.new_tokens + self.text_tokens


def shares(parts: Sequence[Work]) -> list[float]:
    """Where each of consecutive phases ends on the job's 0..1 scale, by their work."""
    total = sum(p.units() for p in parts) or 1.0
    return [end / total for end in accumulate(p.units() for p in parts)]


@dataclass(frozen=True)
class Status:
    """Where a job stands: overall fraction, what it is doing, seconds so far and (once known) left."""

    fraction: float
    message: str
    elapsed: float
    remaining: float | None

    def line(self) -> str:
        """"Scanning English harmful prompts (1/4) · 40% · 12 s elapsed · about 20 s left"."""
        parts = [self.message, f"{self.fraction:.0%}", f"{duration(self.elapsed)} elapsed"]
        if self.remaining is not None and self.fraction < 1:
            parts.append(f"{about(self.remaining)} left")
        return " · ".join(p for p in parts if p)


class Tracker:
    """A Progress callback that keeps the overall fraction monotone, times the job from its creation and
    estimates the time left as elapsed·(1 − f)/f once f ≥ MIN_FRACTION; each report goes to ``sink``."""

    def __init__(self, sink: Callable[[Status], None] = lambda status: None,
                 clock: Callable[[], float] = time.monotonic):
        self._sink, self._clock = sink, clock
        self._start = clock()
        self._message = ""
        self.status = Status(0.0, "", 0.0, None)

    @property
    def elapsed(self) -> float:
        return self._clock() - self._start

    def __call__(self, fraction: float, message: str) -> None:
        self._message = message
        self._report(max(self.status.fraction, min(max(float(fraction), 0.0), 1.0)), message)

    def refresh(self, note: str = "") -> None:
        """Report again at the same fraction with the time moved on; ``note`` (e.g. what the job waits for)
        stands in for the message of this report only."""
        self._report(self.status.fraction, note or self._message)

    def _report(self, f: float, message: str) -> None:
        elapsed = self.elapsed
        remaining = elapsed * (1 - f) / f if f >= MIN_FRACTION else None
        self.status = Status(f, message, elapsed, remaining)
        self._sink(self.status)


def text_bar(stream=sys.stderr, width: int = 30, clock: Callable[[], float] = time.monotonic) -> Tracker:
    """A callback that draws a one-line text bar with elapsed time and time left (for the command line)."""
    def draw(status: Status) -> None:
        filled = int(round(width * status.fraction))
        end = "\n" if status.fraction >= 1.0 else ""
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {status.line()[:100]:<100}{end}")
        stream.flush()
    return Tracker(draw, clock)
