"""Page furniture: titles, charts with their reading guide, progress bars, example downloads, and the one-line
labels of a session's changes to a model."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st

from neuronlab import Intervention
from neuronlab.data.examples import EXAMPLES, EXAMPLES_DIR
from neuronlab.neurons.patches import Patch
from neuronlab.progress import Tracker, heartbeat
from webui.guard import md

KEEP = {"persist_state": "session"}  # widget values survive page switches
BEAT_SECONDS = 0.5  # how often long work touches the page: Stop (or a closed tab) acts within this and one forward pass
MIME = {"jsonl": "application/jsonl", "csv": "text/csv", "json": "application/json",
        "safetensors": "application/octet-stream"}


def header(title: str, line: str) -> None:
    st.title(title)
    st.caption(line)


def chart(fig, key: str, caption: str, **selectable):
    """A plotly figure across the column with its one-line "how to read this" caption; ``selectable``
    (``on_select``, ``selection_mode``) makes clicks on it select, and the selection event is returned."""
    event = st.plotly_chart(fig, key=key, **selectable)
    st.caption(f"**How to read this:** {caption}")
    return event


@contextmanager
def progress(text: str, where=st) -> Iterator[Tracker]:
    """One overall progress bar (phase · percent · elapsed · time left) fed by a ``progress(fraction,
    message)`` callback; removed when the work ends. The tracker's ``elapsed`` is the job's time."""
    bar = where.progress(0.0, text=text)
    tracker = Tracker(lambda status: bar.progress(status.fraction, text=status.line()))
    try:
        with heartbeat(throttled(tracker.refresh)):  # the bar's clock moves on, and Stop acts, between reports
            yield tracker
    finally:
        bar.empty()


def throttled(show: Callable[[str], None], seconds: float = BEAT_SECONDS) -> Callable[[str], None]:
    """A heartbeat that passes a beat on to ``show`` at most every ``seconds``. Each shown beat is a Streamlit
    call, the point where Streamlit ends a script whose user pressed Stop or left."""
    last = time.monotonic()

    def on_beat(note: str) -> None:
        nonlocal last
        if time.monotonic() - last >= seconds:
            last = time.monotonic()
            show(note)
    return on_beat


def example_download(kind: str) -> None:
    """An uploader's file format in one line and an "Example file" download of each example of ``kind``
    (a key of ``neuronlab.data.examples.EXAMPLES``)."""
    files, hint = EXAMPLES[kind]
    st.caption(f"Format: {hint}")
    for column, name in zip(st.columns(4), files):
        suffix = name.rpartition(".")[2]
        label = "Example file" if len(files) == 1 else f"Example file ({suffix.upper()})"
        column.download_button(label, (EXAMPLES_DIR / name).read_bytes, name, MIME.get(suffix, "text/plain"),
                               key=f"example_{name}", on_click="ignore")


def patch_label(patch: Patch) -> str:
    """A patch in a few words: what made it, from which model, how many neurons."""
    kind = patch.meta.get("direction") and {"add": "transfer", "delete": "deletion"}.get(patch.meta["direction"])
    source = patch.meta.get("source", "an uploaded file")
    return f"{kind or 'weight patch'} of {len(patch.neurons):,} neurons from {md(source)}"


def describe_interventions(interventions: list[Intervention]) -> str:
    return " · ".join(f"{iv.mode} **{md(iv.label or 'neurons')}** ({len(iv.neurons):,} neurons"
                      + (f", ×{iv.value:g})" if iv.mode == "activate" else ")") for iv in interventions)
