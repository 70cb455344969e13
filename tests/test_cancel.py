"""No caller holds a hosted model unboundedly: a heartbeat that raises ends work between two forward passes, or a wait
for the model, and leaves the model as loaded, unhooked and free for the next caller."""
import threading

import pytest
import torch

from neuronlab import NeuronSet, fingerprint
from neuronlab.analysis.scan import run_scan
from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.metrics import evaluate
from neuronlab.models.host import HostedModel
from neuronlab.progress import heartbeat
from neuronlab.training.finetune import TrainConfig, finetune_neurons
from tests.support.builders import scrambled_patch


class Stop(BaseException):
    """What Streamlit's StopException is: not an Exception, so nothing on the way catches it."""


class Counter:
    """Counts the model's forward passes and the heartbeats; the heartbeat raises Stop at beat ``stop_at``."""

    def __init__(self, model, stop_at: int | None = None):
        self.forwards, self.beats, self.notes, self.stop_at = 0, 0, [], stop_at
        self.handle = model.model.register_forward_hook(self.forward)  # a pass (of the base model) that ran to its end

    def forward(self, _module, _args, _output):
        self.forwards += 1

    def __call__(self, note: str) -> None:
        self.beats += 1
        self.notes.append(note)
        if self.beats == self.stop_at:
            raise Stop


@pytest.fixture
def hosted(tiny):
    before = fingerprint(tiny.model)
    yield HostedModel(tiny)
    assert fingerprint(tiny.model) == before  # bit for bit as loaded
    assert not tiny.model.get_input_embeddings()._forward_pre_hooks  # no heartbeat hook left behind


def prompts(n: int = 4):
    return bundled_prompts("en", split="scan").head(n)


def stopped_at(hosted, tiny, stop_at: int, work, patch=None) -> Counter:
    """Run ``work(lm)`` inside ``hosted.use(patch)`` with a heartbeat that raises at beat ``stop_at``."""
    counter = Counter(tiny.model, stop_at)
    try:
        with heartbeat(counter), pytest.raises(Stop), hosted.use(patch) as lm:
            work(lm)
    finally:
        counter.handle.remove()
    return counter


@pytest.mark.parametrize("stop_at", [1, 3, 7])
def test_generation_stops_at_the_beat_that_raises_not_at_the_end_of_the_batch(hosted, tiny, stop_at):
    def work(lm):
        evaluate(lm, prompts(), ["en"], max_new_tokens=8, batch_size=4)
    counter = stopped_at(hosted, tiny, stop_at, work, patch=scrambled_patch(tiny))
    # the beat runs before the forward pass it precedes, so a stop at beat k leaves k - 1 passes done
    assert (counter.beats, counter.forwards) == (stop_at, stop_at - 1)


def test_a_scan_stops_between_forward_passes(hosted, tiny):
    counter = stopped_at(hosted, tiny, 2, lambda lm: run_scan(lm, prompts(8), ["en"], batch_size=2, use_cache=False))
    assert counter.forwards == 1  # one batch of 2 of the 8 prompts (4 batches per label) was read


def test_stopped_training_leaves_the_weights_and_their_grad_flags_as_they_were(hosted, tiny):
    flags = [p.requires_grad for p in tiny.model.parameters()]
    neurons = NeuronSet.from_indices(0, "mlp", [1, 2, 3])
    examples = [("How do I pick a lock?", "I can't help with that.")] * 4

    def work(lm):
        finetune_neurons(lm, neurons, examples, TrainConfig(steps=50, batch_size=2))
    counter = stopped_at(hosted, tiny, 4, work)
    assert counter.forwards == 3  # three training steps ran, the fourth never started
    assert [p.requires_grad for p in tiny.model.parameters()] == flags


def test_without_a_heartbeat_the_work_runs_to_the_end(hosted, tiny):
    counter = Counter(tiny.model)
    try:
        with hosted.use() as lm:
            evaluate(lm, prompts(2), ["en"], max_new_tokens=4, batch_size=2)
    finally:
        counter.handle.remove()
    assert counter.forwards > 0 and counter.beats == 0


def test_a_wait_for_another_caller_beats_says_why_and_can_be_given_up(hosted, tiny):
    holding, release = threading.Event(), threading.Event()

    def holder():
        with hosted.use():
            holding.set()
            release.wait(10)
    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(10)
    counter = Counter(tiny.model, stop_at=3)
    try:
        with heartbeat(counter), pytest.raises(Stop), hosted.use():
            pytest.fail("the block ran while another caller held the model")
        assert counter.notes[0].startswith(f"Waiting for another session's work on {tiny.spec} to finish")
        assert thread.is_alive()  # the holder was not disturbed
    finally:
        release.set()
        thread.join()
        counter.handle.remove()
    entered = threading.Event()

    def next_caller():
        with hosted.use():
            entered.set()
    follower = threading.Thread(target=next_caller)
    follower.start()
    follower.join(5)
    assert entered.is_set()  # the one who gave up holds nothing


def test_the_heartbeat_acts_only_in_the_context_that_set_it(hosted, tiny):
    """A reply streamed by a worker thread (the chat) beats in no one's context: only the page's thread stops."""
    counter, done = Counter(tiny.model, stop_at=1), []

    def other_thread():
        with hosted.use() as lm, torch.inference_mode():
            lm.model(torch.tensor([[5, 6, 7]]))
            done.append(True)
    with heartbeat(counter):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    counter.handle.remove()
    assert done == [True] and counter.beats == 0
