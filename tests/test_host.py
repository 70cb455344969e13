"""HostedModel: callers on other threads never see each other's weight patch, and weights end as loaded."""
import threading
import time

import pytest
import torch

from neuronlab import NeuronSet, fingerprint
from neuronlab.models.generation import Sampling, generate
from neuronlab.models.host import HostedModel, use_together
from neuronlab.neurons.patches import Patch, PatchError
from tests.support.builders import scrambled_patch


def logits(lm) -> torch.Tensor:
    with torch.inference_mode():
        return lm.model(torch.tensor([[5, 6, 7, 8]])).logits


@pytest.fixture
def shared(tiny):
    before = fingerprint(tiny.model)
    yield HostedModel(tiny)
    assert fingerprint(tiny.model) == before  # every block reverted, bit for bit


def test_two_threads_each_see_only_their_own_patch(shared, tiny):
    patch = scrambled_patch(tiny)
    with shared.use() as lm:
        plain = logits(lm)
    with shared.use(patch) as lm:
        mine = logits(lm)
    assert not torch.allclose(plain, mine)
    seen: dict[str, list[bool]] = {"patched": [], "plain": []}
    entered, exits = threading.Event(), []

    def patched_caller():
        for i in range(20):
            with shared.use(patch) as lm:
                entered.set()
                if i == 0:
                    time.sleep(0.2)  # the other caller is waiting meanwhile, not reading patched weights
                    exits.append(time.monotonic())
                seen["patched"].append(torch.equal(logits(lm), mine))

    def plain_caller():
        entered.wait()
        for i in range(20):
            with shared.use() as lm:
                if i == 0:
                    assert time.monotonic() >= exits[0]
                seen["plain"].append(torch.equal(logits(lm), plain))

    threads = [threading.Thread(target=patched_caller), threading.Thread(target=plain_caller)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"patched": [True] * 20, "plain": [True] * 20}


def test_streamed_reply_holds_the_patch_for_the_whole_reply(shared, tiny):
    patch, sampling = scrambled_patch(tiny), Sampling(max_new_tokens=12, min_new_tokens=12)
    with shared.use(patch) as lm:
        expected = generate(lm, "hello", [], sampling)
    with shared.use() as lm:
        plain = logits(lm)
    chunks = shared.stream("hello", [], sampling, patch)
    reply = next(chunks)
    other = []
    waiting = threading.Thread(target=lambda: _plain_logits(shared, plain, other))
    waiting.start()
    waiting.join(timeout=0.3)
    assert waiting.is_alive() and not other  # kept out while the reply streams
    reply += "".join(chunks)
    waiting.join()
    assert reply == expected and other == [True]


def _plain_logits(shared, plain, out):
    with shared.use() as lm:
        out.append(torch.equal(logits(lm), plain))


def test_nested_blocks_share_one_patch_only(shared, tiny):
    patch = scrambled_patch(tiny)
    with shared.use(patch), shared.use(patch) as lm:
        assert fingerprint(lm.model) != shared.info.fingerprint
    with use_together(shared, shared) as (a, b):
        assert a is b is tiny
    with shared.use(), pytest.raises(PatchError, match="another patch"):
        with shared.use(patch):
            pass


def test_check_rejects_a_patch_for_another_model_or_shape(shared, tiny):
    patch = scrambled_patch(tiny)
    assert shared.check(patch) is patch
    other = Patch(patch.neurons, patch.tensors, {**patch.meta, "target_fingerprint": "0" * 16})
    with pytest.raises(PatchError, match="made for a model with fingerprint"):
        shared.check(other)
    key = next(iter(patch.tensors))
    wrong = Patch(patch.neurons, {**patch.tensors, key: patch.tensors[key][:, :1]}, patch.meta)
    with pytest.raises(PatchError, match="does not fit the model"):
        shared.check(wrong)
    with pytest.raises(PatchError, match="do not fit"):
        shared.check(Patch(NeuronSet([(9, "mlp", 0)]), {}, patch.meta))


def test_patch_bytes_round_trip_and_junk(tiny):
    patch = scrambled_patch(tiny)
    back = Patch.from_bytes(patch.to_bytes())
    assert back.neurons == patch.neurons and back.meta == patch.meta
    assert all(torch.equal(back.tensors[k], v) for k, v in patch.tensors.items())
    for junk in (b"", b"not a patch at all", b"\x10" + b"\x00" * 7 + b"[1, 2, 3]       "):
        with pytest.raises(PatchError, match=r"not a NeuronLab patch \(safetensors\) file"):
            Patch.from_bytes(junk, "junk")
    damaged = Patch(NeuronSet(), {**patch.tensors, "neurons.mlp": torch.zeros(3, dtype=torch.int64)}, patch.meta)
    with pytest.raises(PatchError, match="damaged"):
        Patch.from_bytes(damaged.to_bytes(), "damaged")
