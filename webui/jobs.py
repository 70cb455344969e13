"""Long work on a page: a stoppable job with one progress bar, how it ended, the quick/full presets that size
it, and how long it will take on this machine."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import streamlit as st

from neuronlab.models.registry import ModelKey
from neuronlab.presets import DEFAULT as DEFAULT_PRESET
from neuronlab.presets import PRESETS, Costs, Preset, measure_costs
from neuronlab.progress import Tracker, Work, about, duration
from webui import state
from webui.guard import guarded
from webui.models import use
from webui.widgets import KEEP, progress


@dataclass(frozen=True)
class JobNote:
    """How a page's last job ended: ``done`` of ``of`` units (a stop keeps the finished ones), in seconds."""

    done: int
    of: int
    unit: str
    seconds: float

    def line(self) -> str:
        if self.done >= self.of:
            return f"Finished in {duration(self.seconds)}."
        return (f"Stopped after {self.done} of {self.of} {self.unit} ({duration(self.seconds)}): "
                "showing what finished.")


@contextmanager
def job(key: str, of: int, unit: str, text: str) -> Iterator[tuple[Tracker, Callable[[object, int], None]]]:
    """A stoppable job: a Stop button beside one overall progress bar. Yields (tracker, keep); ``keep(result,
    done)`` stores the result so far in ``st.session_state[key]``. Clicking Stop reruns the page, which
    interrupts the job at its next progress report; what was kept stays, and ``job_note`` says so."""
    st.session_state.pop(key, None)
    notes = state.job_notes()
    notes[key] = JobNote(0, of, unit, 0.0)
    bar, stop = st.columns([6, 1], vertical_alignment="center")
    stop.button("Stop", key=f"{key}_stop", help="Stop the job and keep what it finished.")
    try:
        with progress(text, bar) as tracker:
            def keep(result: object, done: int) -> None:
                st.session_state[key] = result
                notes[key] = JobNote(done, of, unit, tracker.elapsed)
            try:
                yield tracker, keep
            finally:  # finished or stopped (a stop is no Exception): the job's time so far
                notes[key] = replace(notes[key], seconds=tracker.elapsed)
    except Exception:  # a failed job
        notes.pop(key, None)
        raise


def stopped(key: str) -> bool:
    """Whether the page's last job ``key`` was stopped before it finished."""
    note = state.job_notes().get(key)
    return note is not None and note.done < note.of


def job_note(key: str) -> None:
    """The actual time of the page's last job, and whether it was stopped."""
    if (note := state.job_notes().get(key)) is not None:
        (st.warning if stopped(key) else st.caption)(note.line())


def preset_picker(key: str, fill: Callable[[Preset], dict]) -> None:
    """The quick/full selector; choosing one writes ``fill(preset)`` ({widget key: value}) into the settings
    widgets, which stay editable. The settings widgets take their values from the session state only."""
    def apply() -> None:
        st.session_state.update(fill(PRESETS[st.session_state[key]]))
    if key not in st.session_state:
        st.session_state[key] = DEFAULT_PRESET
        apply()
    st.radio("Preset", list(PRESETS), key=key, horizontal=True, on_change=guarded(apply), **KEEP,
             help=" · ".join(f"{p.name}: {p.description}" for p in PRESETS.values()))


@st.cache_resource
def _costs() -> dict[ModelKey, Costs]:
    """Unit costs per loaded model, timed once (shared by every session)."""
    return {}


def time_estimate(role: str, work: Work) -> None:
    """"Takes about 20 s on this machine", from ``work`` and the unit costs timed on the ``role`` model."""
    key = state.loaded_keys()[role]
    if key not in _costs():
        with st.spinner("Timing the model once, to estimate how long jobs take…"), use(role, with_patch=False) as lm:
            _costs()[key] = measure_costs(lm)
    st.caption(f"Takes {about(_costs()[key].seconds(work))} on this machine.")
