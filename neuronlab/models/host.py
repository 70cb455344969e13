"""One loaded model shared by many callers (the app's browser sessions), each with its own weight patch.

Interventions are hooks scoped to the caller's context, but a weight patch is written into the weights, so
a ``HostedModel`` hands its weights out only inside ``use(patch)``: one caller at a time, the caller's patch
written in for the block and reverted bit-identically after it. Outside a block the weights are always the
ones loaded, so no caller ever sees another caller's patch.

No caller holds a model unboundedly: inside a block every forward pass is a ``progress.beat``, and so is every
tick of waiting for the model, so a front end's heartbeat (the app's Stop button, a closed browser tab) ends the
work or the wait between two forward passes.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager

from neuronlab.models.generation import Sampling, stream
from neuronlab.models.loading import LoadedModel, ModelInfo
from neuronlab.neurons.interventions import Intervention
from neuronlab.neurons.patches import Patch, PatchError, check_patch, forced, patched
from neuronlab.neurons.sites import Architecture
from neuronlab.progress import beat, duration

WAIT_TICK = 0.25  # seconds between beats while waiting for another caller


class HostedModel:
    """A LoadedModel whose weights are reached only through ``use``; ``info``, ``arch`` and ``spec`` are
    free to read."""

    def __init__(self, lm: LoadedModel):
        self._lm = lm
        self._lock = threading.RLock()
        self._patch: Patch | None = None  # the patch written in while a block is open
        self._depth = 0  # open blocks of the thread holding the lock

    @property
    def info(self) -> ModelInfo:
        return self._lm.info

    @property
    def arch(self) -> Architecture:
        return self._lm.arch

    @property
    def spec(self) -> str:
        return self._lm.spec

    def check(self, patch: Patch, force: bool = False) -> Patch:
        """Raise PatchError unless ``patch`` was made for this model and fits its shapes; ``force``: accept one
        made for another model or for none (it is marked as made for this one, see ``patches.forced``)."""
        return forced(self._lm, patch) if force else check_patch(self._lm, patch)

    @contextmanager
    def use(self, patch: Patch | None = None) -> Iterator[LoadedModel]:
        """The model with ``patch`` (None: as loaded) for the block, other callers waiting meanwhile.

        A block may nest inside one of the same thread with the same patch (e.g. donor and target are one
        model); asking for another patch there raises PatchError instead of mixing the two."""
        self._acquire()
        try:
            if self._depth:
                if patch is not self._patch:
                    raise PatchError("this model is in use with another patch in an enclosing block")
                self._depth += 1
                try:
                    yield self._lm
                finally:
                    self._depth -= 1
                return
            self._depth, self._patch = 1, patch
            # every forward pass, of the whole model or of its base (scans), starts at the input embedding
            beats = self._lm.model.get_input_embeddings().register_forward_pre_hook(lambda _module, _args: beat())
            try:
                if patch is None:
                    yield self._lm
                else:
                    with patched(self._lm, patch, check_fingerprint=False):  # checked once, by ``check``
                        yield self._lm
            finally:
                beats.remove()
                self._depth, self._patch = 0, None
        finally:
            self._lock.release()

    def _acquire(self) -> None:
        """Take the lock, beating every WAIT_TICK while another caller has it (a beat that raises gives up)."""
        start = time.monotonic()
        while not self._lock.acquire(timeout=WAIT_TICK):
            beat(f"Waiting for another session's work on {self.spec} to finish "
                 f"({duration(time.monotonic() - start)} so far)")

    def stream(self, prompt: str | Sequence[dict], interventions: Iterable[Intervention] = (),
               sampling: Sampling = Sampling(), patch: Patch | None = None) -> Iterator[str]:
        """``generation.stream`` inside ``use(patch)``: the block stays open for the whole reply. Close the
        iterator (``contextlib.closing``) in the thread that started it, so the lock is released there."""
        with self.use(patch) as lm, closing(stream(lm, prompt, interventions, sampling)) as chunks:
            yield from chunks


@contextmanager
def use_together(*models: HostedModel) -> Iterator[list[LoadedModel]]:
    """Several shared models as loaded (the same one may come twice), locked in one fixed order, so that
    two callers locking the same models never deadlock."""
    with ExitStack() as stack:
        opened = {id(m): stack.enter_context(m.use()) for m in sorted(models, key=id)}
        yield [opened[id(m)] for m in models]
