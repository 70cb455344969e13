"""Interventions on the real demo model: exact zeros, bit-identical no-ops, no leftover hooks, threads."""
import copy
import threading

import pytest
import torch

from neuronlab import Intervention, NeuronSet, intervene
from neuronlab.models.generation import Sampling, encode_chat, generate, stream

LAYER, IDX = 10, [5, 100, 1535]
SUPPRESS = Intervention(NeuronSet.from_indices(LAYER, "mlp", IDX), "suppress")


@pytest.fixture(scope="module")
def batch(smol):
    enc = smol.tokenizer(["How do I bake bread?", "Tell me a joke about cats, please."],
                         return_tensors="pt", padding=True, padding_side="left")
    return dict(enc)


def logits(lm, batch, interventions=()):
    with torch.no_grad(), intervene(lm.model, interventions):
        return lm.model(**batch).logits


@pytest.fixture(scope="module")
def plain(smol, batch):
    return logits(smol, batch)


def capture_input(module, store):
    return module.register_forward_pre_hook(lambda m, args: store.append(args[0].detach().clone()))


def hook_counts(model):
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


def test_suppressed_neuron_is_exactly_zero_and_logits_change(smol, batch, plain):
    down = smol.model.model.layers[LAYER].mlp.down_proj
    seen_plain, seen = [], []
    h = capture_input(down, seen_plain)
    logits(smol, batch)
    h.remove()
    with intervene(smol.model, [SUPPRESS]), torch.no_grad():
        h = capture_input(down, seen)  # registered after ours, so it sees the edited input
        out = smol.model(**batch).logits
        h.remove()
    x, x0 = seen[0], seen_plain[0]  # [batch, seq, 1536]
    assert torch.all(x[..., IDX] == 0) and torch.any(x0[..., IDX] != 0)
    others = [i for i in range(x.shape[-1]) if i not in IDX]
    assert torch.equal(x[..., others], x0[..., others])
    assert not torch.equal(out, plain)


def test_empty_and_unit_activation_are_bit_identical(smol, batch, plain):
    assert torch.equal(logits(smol, batch, []), plain)
    unit = Intervention(NeuronSet.from_indices(LAYER, "mlp", range(0, 1536, 3)), "activate", 1.0)
    assert torch.equal(logits(smol, batch, [unit]), plain)


def test_activate_and_set_scale_or_replace(smol, batch):
    down = smol.model.model.layers[LAYER].mlp.down_proj
    neurons = NeuronSet.from_indices(LAYER, "mlp", IDX)
    seen = {}
    for name, iv in {"plain": None, "activate": Intervention(neurons, "activate", 3.0),
                     "set": Intervention(neurons, "set", {n: float(n.index) for n in neurons})}.items():
        store = []
        with intervene(smol.model, [iv] if iv else []), torch.no_grad():
            h = capture_input(down, store)
            smol.model(**batch)
            h.remove()
        seen[name] = store[0][..., IDX]
    assert torch.allclose(seen["activate"], 3.0 * seen["plain"])
    assert torch.equal(seen["set"], torch.tensor(IDX, dtype=torch.float32).expand_as(seen["set"]))


def test_suppress_equals_zeroing_down_proj_column(smol, batch):
    """Weight-edit cross-check: zeroing MLP channel i == zeroing column i of down_proj."""
    edited = copy.deepcopy(smol.model)
    with torch.no_grad():
        edited.model.layers[LAYER].mlp.down_proj.weight[:, IDX] = 0
        expected = edited(**batch).logits
    del edited
    assert torch.allclose(logits(smol, batch, [SUPPRESS]), expected, atol=1e-4, rtol=0)


def test_no_hook_left_after_block_or_exception(smol, batch):
    before = hook_counts(smol.model)
    with intervene(smol.model, [SUPPRESS]):
        assert hook_counts(smol.model) > before
    assert hook_counts(smol.model) == before
    with pytest.raises(RuntimeError, match="boom"), intervene(smol.model, [SUPPRESS]):
        raise RuntimeError("boom")
    assert hook_counts(smol.model) == before


def test_invalid_neuron_is_a_clear_error_and_leaves_no_hook(smol):
    before = hook_counts(smol.model)
    bad = Intervention(NeuronSet([(LAYER, "mlp", 5), (LAYER, "mlp", 1536)]), "suppress")
    with pytest.raises(ValueError, match=r"\(10, 'mlp', 1536\).*index out of range"):
        with intervene(smol.model, [SUPPRESS, bad]):
            pass
    assert hook_counts(smol.model) == before


def test_intervention_acts_on_every_generated_token(smol):
    enc = encode_chat(smol, "Name three colours.")
    down = smol.model.model.layers[LAYER].mlp.down_proj
    seen = []
    with intervene(smol.model, [SUPPRESS]), torch.inference_mode():
        h = capture_input(down, seen)
        out = smol.model.generate(**enc, max_new_tokens=6, min_new_tokens=6, do_sample=False)
        h.remove()
    assert out.shape[1] - enc["input_ids"].shape[1] == 6
    assert len(seen) == 6  # prefill + 5 cached single-token steps
    assert seen[1].shape[1] == 1  # the KV cache is on
    assert all(torch.all(x[..., IDX] == 0) for x in seen)


def test_threads_sharing_a_model_see_only_their_own_interventions(smol, batch, plain):
    strong = Intervention(NeuronSet.from_indices(LAYER, "mlp", range(0, 1536, 2)), "activate", 4.0)
    expected = {"a": logits(smol, batch, [SUPPRESS]), "b": logits(smol, batch, [strong]), "c": plain}
    ivs = {"a": [SUPPRESS], "b": [strong], "c": []}
    barrier = threading.Barrier(3)
    results, errors = {k: [] for k in ivs}, []

    def worker(name):
        try:
            with intervene(smol.model, ivs[name]):
                barrier.wait(timeout=60)  # all three blocks are open at once
                for _ in range(3):
                    with torch.no_grad():
                        results[name].append(smol.model(**batch).logits)
                barrier.wait(timeout=60)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in ivs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name, outs in results.items():
        for out in outs:
            assert torch.allclose(out, expected[name], atol=1e-5, rtol=0), name
    assert not torch.allclose(expected["a"], expected["b"], atol=1e-2)


def test_generate_with_intervention_changes_reply(smol):
    prompt = "What is the capital of France?"
    plain_reply = generate(smol, prompt, sampling=Sampling(max_new_tokens=16))
    broken = Intervention(NeuronSet((layer, "mlp", i) for layer in range(2) for i in range(1536)), "suppress")
    assert "Paris" in plain_reply
    assert generate(smol, prompt, [broken], Sampling(max_new_tokens=16)) != plain_reply


def test_stream_matches_generate_and_stops(smol):
    prompt = "Write a short poem about the sea."
    before = hook_counts(smol.model)
    settings = Sampling(max_new_tokens=24)
    chunks = list(stream(smol, prompt, [SUPPRESS], settings))
    assert len(chunks) > 3
    assert "".join(chunks).strip() == generate(smol, prompt, [SUPPRESS], settings)
    stop = threading.Event()
    early = []
    for chunk in stream(smol, prompt, [SUPPRESS], Sampling(max_new_tokens=200, min_new_tokens=200), stop):
        early.append(chunk)
        stop.set()
    assert len(early) <= 3  # at most the chunks already decoded when the stop was seen
    assert hook_counts(smol.model) == before  # the worker thread removed its hooks
