"""The neuron inspector's costs on one model, measured in one run (issue #17).

    python bench/neuron_card.py [--model demo-target] [--repeats 3] [--json]

(a) pass_ratio: building the activation pass of the quick prompt set (en + zh, 8 per label, the scan split)
    vs a plain forward pass of the model's body over the same batches (median of back-to-back pairs);
(b) one neuron's profile after the pass (``profile_neuron``, tokens="top"), in seconds, for 10 neurons:
    median and max (the issue's goal: < 2 s on demo-target);
(c) ``neuron_effect`` of one neuron (en, 4 prompts per label, 3 random controls) with the refusal score
    computed the old way (every context + opening pair read whole, as before #17's speed-up; kept here
    only) vs the library's (each context read once, its KV cache shared by the openings), and the largest
    difference between the two results; beside it ``refusal_score`` alone on 8 en prompts, old vs new.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from neuronlab import load_model
from neuronlab.analysis.activations import build_pass
from neuronlab.analysis.profile import profile_neuron
from neuronlab.evaluation import neuron_effect as effect_module
from neuronlab.evaluation.metrics import refusal_openings, refusal_score
from neuronlab.experiments import heldout_prompts
from neuronlab.models.chat import chat_ids, text_ids
from neuronlab.models.generation import encode_prompts, left_padded
from neuronlab.neurons.interventions import intervene
from neuronlab.neurons.sets import Neuron
from neuronlab.threads import default_threads


def old_refusal_score(lm, prompts, lang, interventions=(), batch_size=8) -> torch.Tensor:
    """``refusal_score`` as computed before #17's speed-up: every (chat context + opening) row read whole,
    left-padded, batch_size rows at a time, the full logits of every row."""
    openings = refusal_openings(lang)
    rows, lengths = [], []
    for p in prompts:
        context = chat_ids(lm, p)
        for o in openings:
            tail = text_ids(lm, o)
            rows.append(context + tail)
            lengths.append(len(tail))
    out = []
    with intervene(lm.model, list(interventions)), torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = left_padded(lm, rows[start:start + batch_size])
            logits = lm.model(**batch).logits.float()
            ids = batch["input_ids"]
            logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]  # [batch, width-1]
            out += [logp[r, -n:].sum().item() for r, n in enumerate(lengths[start:start + batch_size])]
    return torch.tensor(out).view(len(prompts), len(openings)).logsumexp(-1)


def timed(fn):
    """(seconds, result) of one call."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def paired(first, second, repeats: int) -> tuple[float, float, float]:
    """(median s of ``first``, median s of ``second``, median of per-pair second/first): back to back, after
    one warm-up each, so slow drifts of a shared machine cancel."""
    first(), second()
    pairs = [(timed(first)[0], timed(second)[0]) for _ in range(repeats)]
    return (statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs),
            statistics.median(b / a for a, b in pairs))


def sample_neurons(lm, count: int, seed: int = 0) -> list[Neuron]:
    """``count`` MLP neurons spread over the layers (seeded), the last layer's included."""
    gen = torch.Generator().manual_seed(seed)
    size, layers = lm.arch.sites["mlp"].size, lm.arch.n_layers
    picked = [round(i * (layers - 1) / max(count - 1, 1)) for i in range(count)]
    return [Neuron(layer, "mlp", int(torch.randint(size, (1,), generator=gen))) for layer in picked]


def table_diff(a: dict, b: dict) -> float:
    """The largest absolute difference between two nested {..: {..: number}} tables."""
    if isinstance(a, dict):
        return max((table_diff(a[k], b[k]) for k in a), default=0.0)
    return abs(a - b)


def run(lm, repeats: int = 3) -> dict:
    prompts = heldout_prompts(["en", "zh"], 8, split="scan")
    batches = [encode_prompts(lm, prompts.texts[i:i + 8]) for i in range(0, len(prompts), 8)]

    def plain():
        with torch.inference_mode():
            for b in batches:
                lm.model.base_model(**b)

    plain_s, pass_s, pass_ratio = paired(plain, lambda: build_pass(lm, prompts, ("mlp",)), repeats)
    acts = build_pass(lm, prompts, ("mlp",))
    neurons = sample_neurons(lm, 10)
    profile_neuron(lm, acts, neurons[0])  # warm-up (the logit lens' first read of the unembedding)
    profile_s = [timed(lambda n=n: profile_neuron(lm, acts, n))[0] for n in neurons]

    en = heldout_prompts(["en"], 4)
    eight = en.texts  # 4 harmful + 4 harmless
    refusal_score(lm, eight[:1], "en"), old_refusal_score(lm, eight[:1], "en")  # warm-up, both ways
    target = neurons[len(neurons) // 2]
    new_s, new = timed(lambda: effect_module.neuron_effect(lm, target, en, ["en"], controls=3))
    with mock.patch.object(effect_module, "refusal_score", old_refusal_score):
        old_s, old = timed(lambda: effect_module.neuron_effect(lm, target, en, ["en"], controls=3))
    score_new_s, score_new = timed(lambda: refusal_score(lm, eight, "en"))
    score_old_s, score_old = timed(lambda: old_refusal_score(lm, eight, "en"))
    return {
        "model": lm.spec, "device": lm.info.device, "dtype": lm.info.dtype, "torch_threads": torch.get_num_threads(),
        "pass": {"prompts": len(prompts), "langs": ["en", "zh"], "batch": 8, "site": "mlp",
                 "plain_forward_s": plain_s, "pass_s": pass_s, "repeats": repeats},
        "pass_ratio": pass_ratio,
        "profile": {"neurons": [list(n) for n in neurons], "tokens": "top", "seconds": profile_s,
                    "median_s": statistics.median(profile_s), "max_s": max(profile_s), "goal_s": 2.0},
        "effect": {"neuron": list(target), "langs": ["en"], "prompts_per_label": 4, "controls": 3,
                   "old_s": old_s, "new_s": new_s, "max_abs_diff": table_diff(*[{k: e.to_dict()[k] for k in
                                                                       ("baseline", "change", "random_change")} for e in (old, new)])},
        "effect_speedup": old_s / new_s,
        "refusal_score": {"prompts": len(eight), "lang": "en", "old_s": score_old_s, "new_s": score_new_s,
                          "max_abs_diff": (score_old - score_new).abs().max().item()},
        "refusal_score_speedup": score_old_s / score_new_s,
    }


def show(r: dict) -> str:
    p, f, e, s = r["pass"], r["profile"], r["effect"], r["refusal_score"]
    rows = [
        ("what", "measure", "figure"),
        (f"activation pass, {p['prompts']} prompts (en+zh)", f"{p['pass_s']:.2f} s vs plain {p['plain_forward_s']:.2f} s",
         f"ratio {r['pass_ratio']:.2f}"),
        (f"profile_neuron ({f['tokens']}), {len(f['seconds'])} neurons", f"median {f['median_s']:.2f} s",
         f"max {f['max_s']:.2f} s (goal < {f['goal_s']:.0f} s)"),
        (f"neuron_effect L{e['neuron'][0]} #{e['neuron'][2]}, en, 4/label, {e['controls']} controls",
         f"old {e['old_s']:.1f} s, new {e['new_s']:.1f} s", f"{r['effect_speedup']:.2f}x (diff {e['max_abs_diff']:.1e})"),
        (f"refusal_score, {s['prompts']} en prompts", f"old {s['old_s']:.2f} s, new {s['new_s']:.2f} s",
         f"{r['refusal_score_speedup']:.2f}x (diff {s['max_abs_diff']:.1e})"),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    head = f"{r['model']} on {r['device']} ({r['dtype']}, {r['torch_threads']} torch threads)"
    return "\n".join([head] + ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-target")
    parser.add_argument("--repeats", type=int, default=3, help="back-to-back pairs for the pass ratio")
    parser.add_argument("--threads", type=int, default=default_threads(), help="torch threads (default: NeuronLab's)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(load_model(args.model), args.repeats)
    print(json.dumps(result, indent=1) if args.json else show(result))
