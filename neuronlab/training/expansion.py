"""SS-Neuron Expansion (Who Transfers Safety?, arXiv 2602.01283): fine-tune only a chosen neuron set
(usually the shared safety neurons) on a parallel multilingual safety set.

The set: harmful *scan* prompts in each language paired with a refusal in that language (the same
refusal for an id in every language: ``assets/refusals.json`` is parallel), harmless scan prompts paired
with the model's own greedy reply (unless the judge calls that reply a refusal: a model that already
refuses harmless prompts would be taught its own false refusals), so that harmless behaviour is what it
was; optionally English replayed beside the other languages. A few harmless scan prompts per language
are held out of training for early stopping on false refusals (the held-out *split* is the test set and
is never touched). With ``TrainConfig.avoid_weight`` the harmless training prompts, paired with a refusal in
their language, are also trained not to open that way (``finetune.opening_unlikelihood``).
"""
from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict

from neuronlab.data.prompts import PromptSet, bundled_prompts
from neuronlab.evaluation.judge import judge
from neuronlab.models.generation import Sampling, generate_batch
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.patches import Patch, PatchError, extract_patch
from neuronlab.neurons.sets import NeuronSet
from neuronlab.paths import ASSETS
from neuronlab.progress import Progress, no_progress
from neuronlab.training.finetune import Example, TrainConfig, finetune_neurons, own_replies, refusal_pairs

RECIPE = "ss-neuron-expansion"
REFUSALS_FILE = ASSETS / "refusals.json"


@functools.cache
def _refusal_table() -> dict[str, tuple[str, ...]]:
    data = json.loads(REFUSALS_FILE.read_text(encoding="utf-8"))["refusals"]
    return {lang: tuple(items) for lang, items in data.items()}


def refusals(lang: str) -> tuple[str, ...]:
    """The bundled refusals of ``lang``; item i means the same in every language."""
    table = _refusal_table()
    if lang not in table:
        raise ValueError(f"no bundled refusals in {lang!r} (have: {', '.join(table)})")
    return table[lang]


def safety_split(langs: Sequence[str], validation: int = 8, limit: int | None = None) -> tuple[PromptSet, PromptSet]:
    """(train, validation) from the bundled *scan* prompts of ``langs``: the last ``validation`` harmless
    ids go to validation; training keeps the first ``limit`` (default all) remaining ids of each label."""
    scan = bundled_prompts(langs, split="scan")
    harmful, harmless = (sorted({p.id for p in scan.filter(label=label)}) for label in ("harmful", "harmless"))
    held = set(harmless[len(harmless) - validation:]) if validation else set()
    train = set(harmful[:limit] + [i for i in harmless if i not in held][:limit])
    return PromptSet(p for p in scan if p.id in train), PromptSet(p for p in scan if p.id in held)


def parallel_examples(lm: LoadedModel, prompts: PromptSet, langs: Sequence[str], seed: int = 0,
                      harmless_repeat: int = 1, max_new_tokens: int = 48, batch_size: int = 8,
                      progress: Progress = no_progress) -> list[Example]:
    """(prompt, reply) pairs per language: harmful → the id's refusal in that language, harmless → the
    model's own greedy reply (``harmless_repeat`` times; see ``own_replies``)."""
    rng = random.Random(seed)
    harmful_ids = sorted({p.id for p in prompts.filter(label="harmful")})
    pick = {i: rng.randrange(len(refusals("en"))) for i in harmful_ids}
    out = []
    for j, lang in enumerate(langs):
        part = prompts.filter(lang=lang)
        out += [Example(p.text, refusals(lang)[pick[p.id]]) for p in part.filter(label="harmful")]
        harmless = part.filter(label="harmless")
        progress(j / len(langs), f"own replies: {lang} ({len(harmless)} harmless prompts)")
        out += own_replies(lm, harmless, max_new_tokens, batch_size) * harmless_repeat
    progress(1.0, f"{len(out)} examples")
    return out


class FalseRefusalStop:
    """Early stopping: each check judges greedy replies to held-out harmless prompts; training stops once
    their false-refusal rate exceeds the budget, keeping the neurons' weights of the last check within it.
    ``start(lm)`` measures the rate before training; a model that starts above ``budget`` may not get worse
    than it started (the budget becomes its starting rate)."""

    def __init__(self, neurons: NeuronSet, validation: PromptSet, budget: float, every: int,
                 max_new_tokens: int = 24, batch_size: int = 8):
        self.neurons, self.validation, self.budget, self.every = neurons, validation, budget, every
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.history: list[dict] = []
        self.kept: Patch | None = None  # weights of the last check within budget (None: the starting weights)
        self.kept_step = 0
        self.checks = 0  # checks during training (the starting rate is not one)

    def start(self, lm: LoadedModel) -> None:
        rate = self.false_refusals(lm)
        self.history.append({"step": 0, "false_refusal": rate})
        self.budget = max(self.budget, rate)

    def false_refusals(self, lm: LoadedModel) -> float:
        replies = generate_batch(lm, self.validation.texts, sampling=Sampling(max_new_tokens=self.max_new_tokens),
                                 batch_size=self.batch_size)
        return sum(judge(r, p.lang).refusal for p, r in zip(self.validation, replies)) / len(replies)

    def __call__(self, lm: LoadedModel) -> bool:
        self.checks += 1
        step, rate = self.every * self.checks, self.false_refusals(lm)
        self.history.append({"step": step, "false_refusal": rate})
        if rate > self.budget:
            return True
        self.kept, self.kept_step = extract_patch(lm, self.neurons), step
        return False


def expand(lm: LoadedModel, neurons: NeuronSet, langs: Sequence[str], config: TrainConfig = TrainConfig(),
           replay_en: bool = False, validation: int = 8, limit: int | None = None, max_false_refusal: float = 0.15,
           harmless_repeat: int = 1, own_tokens: int = 48, progress: Progress = no_progress,
           examples: Sequence[Example] | None = None) -> Patch:
    """A patch over ``lm`` whose ``neurons`` were trained on the parallel safety set in ``langs`` (plus
    English with ``replay_en``; see ``safety_split`` for ``validation`` and ``limit``), stopped early on
    held-out false refusals. The patch's metadata holds the whole recipe (``retrainer`` replays it).
    ``examples``: the training pairs this recipe makes, when already made (they do not depend on ``neurons``)."""
    langs = list(dict.fromkeys(list(langs) + (["en"] if replay_en else [])))
    train, held = safety_split(langs, validation, limit)
    if examples is None:
        examples = parallel_examples(lm, train, langs, config.seed, harmless_repeat, own_tokens,
                                     progress=lambda f, m: progress(0.2 * f, m))
    stop = FalseRefusalStop(neurons, held, max_false_refusal, config.eval_every) if validation else None
    if stop:
        stop.start(lm)
    start = extract_patch(lm, neurons)
    patch = finetune_neurons(lm, neurons, examples, config, check=stop,
                             progress=lambda f, m: progress(0.2 + 0.8 * f, m),
                             avoid=refusal_pairs(train.filter(label="harmless"), refusals, config.seed), recipe=RECIPE, langs=langs,
                             train_config=asdict(config), validation=validation, limit=limit,
                             max_false_refusal=max_false_refusal, harmless_repeat=harmless_repeat,
                             own_tokens=own_tokens, history=stop.history if stop else [])
    if stop and stop.checks and stop.history[-1]["false_refusal"] > stop.budget:
        kept = stop.kept or start
        patch = Patch(patch.neurons, kept.tensors, {**patch.meta, "early_stopped": True, "kept_step": stop.kept_step,
                                                    "false_refusal_budget": stop.budget})
    return patch


def retrainer(lm: LoadedModel, meta: dict, progress: Progress = no_progress) -> Callable[[NeuronSet], Patch]:
    """Train any neuron set of ``lm`` with the recipe recorded in an expansion patch's ``meta`` (so a
    fine-tuned set can be compared with random masks of the same shape). The training pairs are made
    once (the model's own replies cost more than a short training run) and shared by every set."""
    keys = ("validation", "limit", "max_false_refusal", "harmless_repeat", "own_tokens")
    try:  # the recipe comes from a patch file's metadata
        config = TrainConfig(**meta["train_config"])
        missing = [k for k in ("langs", *keys) if k not in meta]
    except (KeyError, TypeError, ValueError) as e:
        missing = [f"train_config ({e})"]
    if missing or not isinstance(meta["langs"], list) or not all(isinstance(lang, str) for lang in meta["langs"]):
        raise PatchError(f"the patch's training recipe is damaged (missing or wrong: {', '.join(missing) or 'langs'}); "
                         "evaluate it with --controls 0 (no random controls)")

    @functools.cache
    def examples() -> tuple[Example, ...]:
        train = safety_split(meta["langs"], meta["validation"], meta["limit"])[0]
        return tuple(parallel_examples(lm, train, meta["langs"], config.seed, meta["harmless_repeat"],
                                       meta["own_tokens"], progress=lambda f, m: progress(0.2 * f, f"retraining: {m}")))

    return lambda neurons: expand(lm, neurons, meta["langs"], config, examples=examples(),
                                  progress=lambda f, m: progress(f, f"retraining: {m}"), **{k: meta[k] for k in keys})
