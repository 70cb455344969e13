"""Job sizes and how long a job will take.

Two presets: ``quick`` answers in seconds on a 2-core CPU with the built-in demo pair (every job ≤ 30 s),
``full`` runs the research settings. A job's duration is estimated before it starts from its work size
(``progress.Work``) and per-unit costs timed on the loaded model (``measure_costs``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.metrics import CHARS_PER_TOKEN, benign_texts, evaluation_work, refusal_openings
from neuronlab.models.generation import Sampling, encode_prompts, generate_batch
from neuronlab.models.loading import LoadedModel
from neuronlab.progress import Work
from neuronlab.transfer.curve import search_steps


@dataclass(frozen=True)
class ScanSize:
    langs: tuple[str, ...]
    per_label: int | None  # None: every scan prompt
    method: str = "activation"


@dataclass(frozen=True)
class EvalSize:
    langs: tuple[str, ...]
    per_label: int
    max_new_tokens: int
    seeds: int = 0  # random-neuron controls
    mc_questions: int | None = None  # None: all


@dataclass(frozen=True)
class CurveSize:
    per_label: int  # scan prompts per label for the fast refusal score
    seeds: int  # random sets per step
    max_percent: float  # largest set, % of the pool
    start: int  # neurons moved at the first step (then doubled)
    benign: int | None = None  # English benign paragraphs for perplexity; None: all


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    scan: ScanSize
    evaluation: EvalSize
    transfer: EvalSize  # the before/after evaluation of a transfer
    curve: CurveSize


PRESETS = {p.name: p for p in (
    Preset("quick", "small samples, short replies: every job answers in seconds on a laptop CPU",
           ScanSize(("en", "zh"), 8),
           EvalSize(("en",), 4, 16, seeds=1, mc_questions=10),
           EvalSize(("en",), 4, 16, mc_questions=10),
           CurveSize(4, 1, 0.2775, 64, benign=3)),  # two steps on SmolLM2's 46,080 MLP neurons: 64 and 128
    Preset("full", "the research settings: every prompt, long replies, three random controls (minutes to hours)",
           ScanSize(("en", "zh", "es", "fr"), None),
           EvalSize(("en",), 60, 48, seeds=3),
           EvalSize(("en",), 60, 48),
           CurveSize(24, 1, 1.0, 8)),
)}
DEFAULT = "quick"


# ---- work sizes ------------------------------------------------------------------------------
def scan_work(n_prompts: int, method: str = "activation", probes: int = 4, neurons: int = 0) -> Work:
    """An activation scan reads each prompt once; attribution adds ``probes`` copies and a backward pass
    (about 3× a forward); ablation one pass per neuron (``neurons``)."""
    factor = {"activation": 1, "attribution": 3 * probes, "ablation": 1 + neurons}[method]
    return Work(prompts=n_prompts * factor)


def evaluation_size(size: EvalSize, variants: int = 1) -> Work:
    """``variants`` evaluations at ``size``."""
    phases = evaluation_work(len(size.langs) * 2 * size.per_label, size.langs, size.max_new_tokens,
                             size.mc_questions)
    return sum(phases.values(), Work()) * variants


def _rows(per_label: int, function: str) -> int:
    """Forward rows of one fast measure: each prompt with each refusal opening (refusal), or an item's two or
    three sentences (bias; each shorter than a chat-templated prompt, counted as one)."""
    return 3 * per_label if function == "bias" else 2 * per_label * len(refusal_openings("en"))


def ranking_work(ranking: str, per_label: int, function: str = "refusal") -> Work:
    """Causal ranking: a forward and backward pass per row of the fast measure; the others read weights only
    (contrast: one pass per scan prompt, not counted)."""
    return Work(prompts=3 * _rows(per_label, function)) if ranking == "causal" else Work()


def curve_work(size: CurveSize, pool: int, function: str = "refusal") -> Work:
    """The most a minimal-subset search of ``size`` over ``pool`` candidates does (it stops at the goal)."""
    steps = len(search_steps(size.start, max(1, round(size.max_percent / 100 * pool))))
    one = Work(prompts=_rows(size.per_label, function),
               text_tokens=sum(map(len, benign_texts("en")[:size.benign])) / CHARS_PER_TOKEN)
    return one * (1 + steps * (1 + size.seeds))


# ---- costs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Costs:
    """Seconds per unit of work on one model here: a prompt token of a batched forward pass, and a greedy
    token per prompt of a batch; a chat-templated prompt's length in tokens."""

    token: float
    new_token: float
    prompt_tokens: float

    def seconds(self, work: Work) -> float:
        return (work.prompts * self.prompt_tokens + work.text_tokens) * self.token + work.new_tokens * self.new_token


def measure_costs(lm: LoadedModel, n: int = 4, new_tokens: int = 8) -> Costs:
    """Time one batched forward pass of ``n`` bundled prompts and a greedy reply of ``new_tokens`` to them."""
    texts = bundled_prompts("en", split="scan").head(n // 2).texts  # n/2 per label
    batch = encode_prompts(lm, texts)
    tokens = int(batch["attention_mask"].sum())
    with torch.inference_mode():
        lm.model(**batch)  # warm-up
        start = time.perf_counter()
        lm.model(**batch)
        forward = time.perf_counter() - start
    start = time.perf_counter()
    generate_batch(lm, texts, sampling=Sampling(max_new_tokens=new_tokens), batch_size=len(texts))
    generation = time.perf_counter() - start
    return Costs(forward / tokens, max(generation - forward, 0.0) / (len(texts) * new_tokens), tokens / len(texts))

