"""Page furniture: titles, charts with their reading guide, progress bars, example downloads, and the one-line
labels of a session's changes to a model."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from neuronlab import Intervention
from neuronlab.data.examples import EXAMPLES, EXAMPLES_DIR
from neuronlab.neurons.patches import Patch
from neuronlab.progress import Tracker
from webui.guard import md

KEEP = {"persist_state": "session"}  # widget values survive page switches
MIME = {"jsonl": "application/jsonl", "csv": "text/csv", "json": "application/json",
        "safetensors": "application/octet-stream"}


def header(title: str, line: str) -> None:
    st.title(title)
    st.caption(line)


def chart(fig, key: str, caption: str) -> None:
    """A plotly figure across the column with its one-line "how to read this" caption."""
    st.plotly_chart(fig, key=key)
    st.caption(f"**How to read this:** {caption}")


@contextmanager
def progress(text: str, where=st) -> Iterator[Tracker]:
    """One overall progress bar (phase · percent · elapsed · time left) fed by a ``progress(fraction,
    message)`` callback; removed when the work ends. The tracker's ``elapsed`` is the job's time."""
    bar = where.progress(0.0, text=text)
    tracker = Tracker(lambda status: bar.progress(status.fraction, text=status.line()))
    try:
        yield tracker
    finally:
        bar.empty()


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
