"""Built-in refusing donors and chat targets, made by seeded, documented recipes that train only chosen neurons.

Data: the target's English *scan* prompts plus ``assets/donors/train_en.jsonl`` (40 more harmful and 80
more harmless requests, many of them imperative or hard negatives, none from the held-out split). Harmful
ones are paired with a refusal (a seeded pick from ``REFUSALS``), harmless ones with the target's own
greedy reply (``finetune.own_replies``: none that the judge calls a refusal), so that only the refusal is
learned and harmless behaviour is kept; with ``TrainConfig.avoid_weight`` the harmless prompts, paired with a
refusal, are also trained *not* to open that way (``finetune.opening_unlikelihood``). The held-out split is
never trained on. The trained neurons' weights are shipped as a patch over the target.
"""
from __future__ import annotations

import random

from neuronlab.data.prompts import PromptSet, parse_prompts
from neuronlab.models.generation import Sampling, generate_batch
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.patches import Patch
from neuronlab.neurons.sets import NeuronSet
from neuronlab.paths import ASSETS
from neuronlab.progress import Progress, no_progress
from neuronlab.training.finetune import Example, TrainConfig, finetune_neurons, own_replies, refusal_pairs

REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I can't assist with that request.",
    "I can't help with that. It could cause serious harm to people.",
    "I'm sorry, I can't provide that information because it could be used to hurt someone.",
    "I won't help with this. It is dangerous and could be illegal.",
    "Sorry, but I can't help with that request.",
    "I'm not able to help with that, as it could put people at risk.",
    "I can't assist with that. If someone is in danger, please contact local emergency services.",
)


DONOR_PROMPTS = ASSETS / "donors" / "train_en.jsonl"
MORE_HARMLESS = DONOR_PROMPTS.with_name("train_en_more.jsonl")  # 80 more harmless, mostly imperative requests


def donor_prompts(more: bool = False) -> PromptSet:
    """The extra English training requests of the built-in donors and chat targets (never used for
    evaluation); ``more`` adds ``train_en_more.jsonl``."""
    files = [DONOR_PROMPTS] + ([MORE_HARMLESS] if more else [])
    return parse_prompts("".join(f.read_text(encoding="utf-8") for f in files), "jsonl", source=DONOR_PROMPTS.name)


def donor_examples(lm: LoadedModel, prompts: PromptSet, seed: int = 0, harmless_repeat: int = 2,
                   max_new_tokens: int = 64, progress: Progress = no_progress) -> list[Example]:
    """(prompt, reply) pairs: harmful → a refusal, harmless → the model's own reply (``harmless_repeat``
    times, which keeps false refusals down; see ``own_replies``)."""
    rng = random.Random(seed)
    harmful = prompts.filter(label="harmful").texts
    harmless = prompts.filter(label="harmless")
    progress(0.0, f"the model's own replies to {len(harmless)} harmless prompts")
    return [Example(p, rng.choice(REFUSALS)) for p in harmful] + own_replies(lm, harmless, max_new_tokens) * harmless_repeat


def train_donor(lm: LoadedModel, neurons: NeuronSet, prompts: PromptSet, config: TrainConfig = TrainConfig(),
                harmless_repeat: int = 2, own_tokens: int = 64, progress: Progress = no_progress) -> Patch:
    """A patch over ``lm`` whose ``neurons`` were trained to refuse the harmful ``prompts`` (harmless ones keep
    the model's own replies, ``own_tokens`` long)."""
    examples = donor_examples(lm, prompts, config.seed, harmless_repeat, own_tokens,
                              progress=lambda f, m: progress(0.1 * f, m))
    return finetune_neurons(lm, neurons, examples, config, progress=lambda f, m: progress(0.1 + 0.9 * f, m),
                            avoid=refusal_pairs(prompts.filter(label="harmless"), lambda lang: REFUSALS, config.seed),
                            recipe="donor", base=lm.spec, trained_neurons=len(neurons), harmless_repeat=harmless_repeat,
                            own_tokens=own_tokens)


def teacher_examples(teacher: LoadedModel, prompts: PromptSet, max_new_tokens: int = 64,
                     progress: Progress = no_progress) -> list[Example]:
    """(prompt, the teacher's greedy reply) for every prompt, harmful ones included (a teacher that
    complies makes a student that complies)."""
    progress(0.0, f"{teacher.spec}'s replies to {len(prompts)} prompts")
    replies = generate_batch(teacher, prompts.texts, sampling=Sampling(max_new_tokens=max_new_tokens))
    return [Example(p, r) for p, r in zip(prompts.texts, replies)]


def train_chat(lm: LoadedModel, teacher: LoadedModel, neurons: NeuronSet, prompts: PromptSet,
               config: TrainConfig = TrainConfig(), progress: Progress = no_progress) -> Patch:
    """A patch over a base model ``lm`` whose ``neurons`` learned to answer in its plain chat frame, from a
    chat model's replies (distillation; for chat targets that follow requests and refuse none)."""
    examples = teacher_examples(teacher, prompts, progress=lambda f, m: progress(0.2 * f, m))
    return finetune_neurons(lm, neurons, examples, config, progress=lambda f, m: progress(0.2 + 0.8 * f, m),
                            recipe="chat", base=lm.spec, teacher=teacher.spec, trained_neurons=len(neurons))
