"""Behaviours beyond refusal. A *function* is a named contrast between two labelled prompt sets (a scan's
``labels``: the behaviour's side first) plus a metric: refusal (harmful vs harmless, the refusal judge), bias
(stereotype vs anti-stereotype fills, the stereotype score of ``evaluation.bias``), and the user's own: two labels
of an uploaded prompt file with a regular expression that marks a reply showing the behaviour (``match_rates``).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from neuronlab.data.prompts import LABELS, PromptSet
from neuronlab.errors import NeuronLabError
from neuronlab.evaluation.metrics import Rate
from neuronlab.models.generation import Sampling, generate_batch
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import Intervention
from neuronlab.progress import Progress, language_name, no_progress

MAX_PATTERN_CHARS = 500


@dataclass(frozen=True)
class Function:
    """A behaviour: its two labels (the behaviour's side first) and what its judged metric measures."""

    name: str
    labels: tuple[str, str]
    metric: str


REFUSAL = Function("refusal", LABELS, "the share of greedy replies the refusal judge counts as refusals")
BIAS = Function("bias", ("stereotype", "anti_stereotype"),
                "the stereotype score (share of items whose stereotype fill the model prefers) and the LM score")


def check_pattern(text: str) -> re.Pattern:
    """A user's regular expression for ``match_rates`` (case-insensitive), or a NeuronLabError saying what is wrong."""
    if not text or len(text) > MAX_PATTERN_CHARS:
        raise NeuronLabError(f"--match: give a regular expression of 1 to {MAX_PATTERN_CHARS} characters")
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as e:
        raise NeuronLabError(f"--match {text!r} is not a regular expression: {e}") from None


def match_function(labels: tuple[str, str], pattern: re.Pattern) -> Function:
    return Function("match", labels, f"the share of greedy replies that match /{pattern.pattern}/ (case-insensitive)")


def match_rates(lm: LoadedModel, prompts: PromptSet, langs: Sequence[str], labels: tuple[str, str],
                pattern: re.Pattern, interventions: Iterable[Intervention] = (), max_new_tokens: int = 48,
                batch_size: int = 8, examples: int = 3, progress: Progress = no_progress) -> dict:
    """{lang: {label: {"n", "hits", "hit_rate", "stderr", "ci95", "examples"}}}: how many greedy replies to each
    language's prompts of each label match ``pattern``, with the binomial error bars of ``metrics.Rate``."""
    interventions, out = list(interventions), {}
    jobs = [(lang, label) for lang in langs for label in labels]
    for j, (lang, label) in enumerate(jobs):
        part = prompts.filter(lang=lang, label=label)
        if not len(part):
            raise NeuronLabError(f"no {label} prompts in {lang!r}: each language needs prompts of both labels")
        progress(j / len(jobs), f"Writing replies to {len(part)} {language_name(lang)} {label} prompts "
                                f"({j + 1}/{len(jobs)})")
        replies = generate_batch(lm, part.texts, interventions, Sampling(max_new_tokens=max_new_tokens), batch_size)
        hits = [bool(pattern.search(r)) for r in replies]
        block = Rate(sum(hits), len(hits)).to_dict("hit")
        block["examples"] = [{"prompt": p.text, "reply": r, "hit": h}
                             for p, r, h in list(zip(part, replies, hits))[:examples]]
        out.setdefault(lang, {})[label] = block
    progress(1.0, "Replies written and matched")
    return out
