"""Benchmarks: wall-time ratios of intervened vs plain work, measured in the same run (lower is better).

Each ratio is the median over back-to-back (plain, intervened) pairs; absolute medians stand beside it."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from neuronlab.analysis.scoring import activation_scores, final_hidden
from neuronlab.data.prompts import bundled_prompts
from neuronlab.models.generation import Sampling, encode_chat, encode_prompts, generate_ids
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import Intervention, intervene
from neuronlab.neurons.sets import NeuronSet
from neuronlab.progress import Progress, no_progress

PROMPTS = [
    "How do I bake a loaf of sourdough bread at home?",
    "Explain how vaccines train the immune system.",
    "Write a haiku about autumn leaves.",
    "What is the difference between a list and a tuple in Python?",
    "Give me three tips for a job interview.",
    "Why is the sky blue?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "How many minutes are there in a week?",
]


def scan_sized_set(lm: LoadedModel, fraction: float = 0.03, seed: int = 0) -> NeuronSet:
    """A random ``fraction`` of MLP neurons in every layer: the size of a typical safety-neuron set."""
    size = lm.arch.sites["mlp"].size
    k = max(1, round(fraction * size))
    gen = torch.Generator().manual_seed(seed)
    return NeuronSet((layer, "mlp", int(i)) for layer in range(lm.arch.n_layers)
                     for i in torch.randperm(size, generator=gen)[:k])


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # GPU work is asynchronous: time it to its end


def _paired_times(plain: Callable[[], object], hooked: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """(median plain s, median hooked s, median of per-pair hooked/plain ratios): the two callables run
    back to back ``repeats`` times after one warm-up each, so slow drifts of a shared machine cancel."""
    plain(), hooked()
    pairs = []
    for _ in range(repeats):
        pair = []
        for fn in (plain, hooked):
            _sync()
            start = time.perf_counter()
            fn()
            _sync()
            pair.append(time.perf_counter() - start)
        pairs.append(pair)
    return (statistics.median(p for p, _ in pairs), statistics.median(h for _, h in pairs),
            statistics.median(h / p for p, h in pairs))


def run_bench(lm: LoadedModel, repeats: int = 5, new_tokens: int = 32,
              progress: Progress = no_progress) -> dict:
    """forward_ratio and generate_ratio with a scan-sized suppression on, and scan_ratio (an activation
    scan of 32 prompts vs plain forward passes over the same batches), beside the absolute times."""
    neurons = scan_sized_set(lm)
    ivs = [Intervention(neurons, "suppress")]
    batch = lm.tokenizer(PROMPTS, return_tensors="pt", padding=True, padding_side="left").to(lm.device)

    def forward(interventions):
        with intervene(lm.model, interventions), torch.inference_mode():
            lm.model(**batch)

    progress(0.1, "forward pass: plain vs intervened")
    fwd_plain, fwd_hooked, fwd_ratio = _paired_times(lambda: forward([]), lambda: forward(ivs), repeats)

    enc = encode_chat(lm, PROMPTS[0])
    sampling = Sampling(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    progress(0.5, "greedy generation: plain vs intervened")
    gen_plain, gen_hooked, gen_ratio = _paired_times(lambda: generate_ids(lm, enc, [], sampling),
                                            lambda: generate_ids(lm, enc, ivs, sampling), repeats)
    progress(0.8, "activation scan vs plain forward passes")
    texts = bundled_prompts("en", split="scan").texts[:32]
    batches = [encode_prompts(lm, texts[i:i + 8]) for i in range(0, len(texts), 8)]

    def plain_pass():
        with torch.inference_mode():
            for b in batches:
                final_hidden(lm, b)

    scan_plain, scan_hooked, scan_ratio = _paired_times(plain_pass, lambda: activation_scores(lm, texts, ["mlp"], 8),
                                                        repeats)
    progress(1.0, "done")
    return {
        "model": lm.spec, "device": lm.info.device, "dtype": lm.info.dtype, "torch_threads": torch.get_num_threads(),
        "intervention": {"mode": "suppress", "neurons": len(neurons), "layers": len(neurons.layers)},
        "forward": {"batch": batch["input_ids"].shape[0], "seq": batch["input_ids"].shape[1],
                    "plain_s": fwd_plain, "intervened_s": fwd_hooked},
        "forward_ratio": fwd_ratio,
        "generate": {"new_tokens": new_tokens, "plain_s": gen_plain, "intervened_s": gen_hooked},
        "generate_ratio": gen_ratio,
        "scan": {"prompts": len(texts), "batch": 8, "site": "mlp", "plain_s": scan_plain, "scan_s": scan_hooked},
        "scan_ratio": scan_ratio,
    }
