"""Behaviours beyond refusal. A *function* is a named contrast between two labelled prompt sets (a scan's
``labels``: the behaviour's side first) plus a metric: refusal (harmful vs harmless, the refusal judge), bias
(stereotype vs anti-stereotype fills, the stereotype score of ``evaluation.bias``), and the user's own: two labels
of an uploaded prompt file with either a regular expression that marks a reply showing the behaviour
(``match_rates``, on greedy replies) or the openings such a reply starts with (``opening_rates``, one pass per
prompt, no generation).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from neuronlab.data.prompts import LABELS, PromptSet
from neuronlab.errors import NeuronLabError
from neuronlab.evaluation.metrics import Rate, opening_score
from neuronlab.models.generation import Sampling, generate_batch
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import Intervention
from neuronlab.progress import Progress, language_name, no_progress

MAX_PATTERN_CHARS = 500
MAX_OPENINGS, MAX_OPENING_CHARS = 50, 200
THRESHOLD = 0.1  # the opening probability from which a prompt counts as a hit (as the fast refusal rate's)


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


def _parts(prompts: PromptSet, langs: Sequence[str], labels: tuple[str, str]) -> Iterator[tuple]:
    """(index, count, lang, label, its prompts) for each language and label; a NeuronLabError when one has none."""
    jobs = [(lang, label) for lang in langs for label in labels]
    for j, (lang, label) in enumerate(jobs):
        part = prompts.filter(lang=lang, label=label)
        if not len(part):
            raise NeuronLabError(f"no {label} prompts in {lang!r}: each language needs prompts of both labels")
        yield j, len(jobs), lang, label, part


def match_rates(lm: LoadedModel, prompts: PromptSet, langs: Sequence[str], labels: tuple[str, str],
                pattern: re.Pattern, interventions: Iterable[Intervention] = (), max_new_tokens: int = 48,
                batch_size: int = 8, examples: int = 3, progress: Progress = no_progress) -> dict:
    """{lang: {label: {"n", "hits", "hit_rate", "stderr", "ci95", "examples"}}}: how many greedy replies to each
    language's prompts of each label match ``pattern``, with the binomial error bars of ``metrics.Rate``."""
    interventions, out = list(interventions), {}
    for j, jobs, lang, label, part in _parts(prompts, langs, labels):
        progress(j / jobs, f"Writing replies to {len(part)} {language_name(lang)} {label} prompts ({j + 1}/{jobs})")
        replies = generate_batch(lm, part.texts, interventions, Sampling(max_new_tokens=max_new_tokens), batch_size)
        hits = [bool(pattern.search(r)) for r in replies]
        block = Rate(sum(hits), len(hits)).to_dict("hit")
        block["examples"] = [{"prompt": p.text, "reply": r, "hit": h}
                             for p, r, h in list(zip(part, replies, hits))[:examples]]
        out.setdefault(lang, {})[label] = block
    progress(1.0, "Replies written and matched")
    return out


def check_openings(text: str) -> tuple[str, ...]:
    """A user's reply openings for ``opening_rates``: ``|``- or newline-separated, blanks dropped, each stripped and
    kept once; a NeuronLabError says what is wrong."""
    openings = tuple(dict.fromkeys(o.strip() for o in re.split(r"[|\n]", text or "") if o.strip()))
    if not 1 <= len(openings) <= MAX_OPENINGS:
        raise NeuronLabError(f"--openings: give 1 to {MAX_OPENINGS} reply openings separated by | or new lines "
                             f"(got {len(openings)})")
    long = [o for o in openings if len(o) > MAX_OPENING_CHARS]
    if long:
        raise NeuronLabError(f"--openings: {long[0][:40]!r}… is longer than {MAX_OPENING_CHARS} characters")
    return openings


def openings_function(labels: tuple[str, str], openings: Sequence[str], threshold: float = THRESHOLD) -> Function:
    shown = " | ".join(openings[:5]) + (f" | … ({len(openings)} in all)" if len(openings) > 5 else "")
    return Function("openings", labels, f"the share of prompts whose reply opens with one of “{shown}” with "
                                        f"probability ≥ {threshold:g}")


def opening_rates(lm: LoadedModel, prompts: PromptSet, langs: Sequence[str], labels: tuple[str, str],
                  openings: Sequence[str], threshold: float = THRESHOLD, interventions: Iterable[Intervention] = (),
                  batch_size: int = 8, progress: Progress = no_progress) -> dict:
    """{lang: {label: {"n", "hits", "hit_rate", "stderr", "ci95", "mean_logp"}}}: how many of each language's prompts
    of each label have a reply that opens with one of ``openings`` with probability at least ``threshold``
    (``metrics.opening_score``), with the binomial error bars of ``metrics.Rate`` and the mean log-probability.
    No generation: one forward pass per prompt (its KV cache shared by the openings)."""
    if not 0 < threshold <= 1:
        raise NeuronLabError(f"--threshold {threshold}: give a probability in (0, 1]")
    interventions, out = list(interventions), {}
    for j, jobs, lang, label, part in _parts(prompts, langs, labels):
        progress(j / jobs, f"Scoring the reply openings of {len(part)} {language_name(lang)} {label} prompts "
                           f"({j + 1}/{jobs})")
        scores = opening_score(lm, part.texts, openings, interventions, batch_size)  # [n]
        block = Rate(int((scores >= math.log(threshold)).sum()), len(part)).to_dict("hit")
        block["mean_logp"] = scores.mean().item()
        out.setdefault(lang, {})[label] = block
    progress(1.0, "Reply openings scored")
    return out
