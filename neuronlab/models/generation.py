"""Chat with a (possibly intervened) model: one reply as a string, or streamed as text chunks."""
from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import StoppingCriteria, TextIteratorStreamer

from neuronlab.errors import NeuronLabError
from neuronlab.models.chat import chat_ids
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import Intervention, intervene

PLAIN_STOPS = ("\nUser:",)  # models without a chat template talk in a "User: …\nAssistant:" frame


@dataclass(frozen=True)
class Sampling:
    """Decoding settings: greedy by default; ``do_sample`` with temperature / top-p and a seed."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int | None = None
    min_new_tokens: int = 0  # > 0 forces a length (benchmarks compare equal token counts)


MIN_REPLY_ROOM = 16  # tokens a chat keeps free for the reply when it cuts a long conversation


class ContextError(NeuronLabError):
    """A prompt that does not fit the model's context."""


def context_length(lm: LoadedModel) -> int:
    """The most tokens the model reads at once (prompt and reply together)."""
    return int(getattr(lm.model.config, "max_position_embeddings", None) or 2048)


def encode_chat(lm: LoadedModel, prompt: str | Sequence[dict]) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask [1, seq] for a chat turn, on the model's input device. A conversation longer
    than the model's context loses its oldest tokens (with a warning), keeping room for a reply."""
    ids = chat_ids(lm, prompt)
    room = context_length(lm) - MIN_REPLY_ROOM
    if len(ids) > room:
        warnings.warn(f"the conversation is {len(ids):,} tokens, more than the {room:,} {lm.spec} reads with room "
                      "for a reply; its oldest tokens are left out", stacklevel=2)
        ids = ids[-room:]
    tensor = torch.tensor([ids], device=lm.device)
    return {"input_ids": tensor, "attention_mask": torch.ones_like(tensor)}


def left_padded(lm: LoadedModel, rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """Token-id rows as one left-padded batch: input_ids / attention_mask / position_ids [batch, seq], so that
    position -1 is every row's last real token and positions count real tokens only."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[lm.tokenizer.pad_token_id] * (width - len(r)) + list(r) for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    batch = {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
    return {k: v.to(lm.device) for k, v in batch.items()}


def encode_prompts(lm: LoadedModel, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
    """A left-padded batch of chat-formatted prompts (see ``left_padded``). Raises ContextError for a prompt
    longer than the model's context (a prompt set's prompts are measured whole, never cut)."""
    rows, limit = [chat_ids(lm, p) for p in prompts], context_length(lm)
    for prompt, row in zip(prompts, rows):
        if len(row) >= limit:
            raise ContextError(f"the prompt {prompt[:40]!r}… is {len(row):,} tokens; {lm.spec} reads at most "
                               f"{limit:,}: shorten it or leave it out of the prompt set")
    return left_padded(lm, rows)


class _EventStop(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def generate_ids(lm: LoadedModel, enc: dict, interventions: Iterable[Intervention], sampling: Sampling,
                  **extra) -> torch.Tensor:
    """Token ids [batch, prompt + new] generated with ``interventions`` on; at most as many new tokens as the
    model's context leaves after the prompt."""
    room = context_length(lm) - enc["input_ids"].shape[1]
    if room < 1:
        raise ContextError(f"the prompt is {enc['input_ids'].shape[1]:,} tokens; {lm.spec} reads at most "
                           f"{context_length(lm):,}, so it has no room for a reply")
    kwargs = dict(max_new_tokens=min(sampling.max_new_tokens, room), min_new_tokens=min(sampling.min_new_tokens, room),
                  do_sample=sampling.do_sample, pad_token_id=lm.tokenizer.pad_token_id)
    if sampling.do_sample:
        kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
    if not lm.info.chat_template:
        kwargs.update(stop_strings=list(PLAIN_STOPS), tokenizer=lm.tokenizer)
    with intervene(lm.model, interventions), torch.inference_mode(), torch.random.fork_rng(devices=[]):
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        return lm.model.generate(**enc, **kwargs, **extra)


def _stops(lm: LoadedModel) -> tuple[str, ...]:
    return () if lm.info.chat_template else PLAIN_STOPS


def generate(lm: LoadedModel, prompt: str | Sequence[dict], interventions: Iterable[Intervention] = (),
             sampling: Sampling = Sampling()) -> str:
    """The model's reply to ``prompt`` with ``interventions`` on."""
    enc = encode_chat(lm, prompt)
    return _reply(lm, generate_ids(lm, enc, interventions, sampling)[0, enc["input_ids"].shape[1]:])


def _reply(lm: LoadedModel, new_ids: torch.Tensor) -> str:
    """Decoded new tokens [new] up to the first stop string."""
    text = lm.tokenizer.decode(new_ids, skip_special_tokens=True)
    for s in _stops(lm):
        text = text.split(s)[0]
    return text.strip()


def generate_batch(lm: LoadedModel, prompts: Sequence[str], interventions: Iterable[Intervention] = (),
                   sampling: Sampling = Sampling(max_new_tokens=48), batch_size: int = 8) -> list[str]:
    """Replies to many single-turn prompts, generated in left-padded batches."""
    interventions, replies = list(interventions), []
    for start in range(0, len(prompts), batch_size):
        enc = encode_prompts(lm, prompts[start:start + batch_size])
        ids = generate_ids(lm, {k: enc[k] for k in ("input_ids", "attention_mask")}, interventions, sampling)
        replies.extend(_reply(lm, row) for row in ids[:, enc["input_ids"].shape[1]:])
    return replies


def _until_stops(chunks: Iterable[str], stops: Sequence[str]) -> Iterator[str]:
    """Pass chunks through (leading whitespace dropped), holding back any tail that may begin a stop
    string, and end at the first stop string."""
    pending, started = "", False
    for chunk in chunks:
        pending += chunk
        if not started:
            pending = pending.lstrip()
            started = bool(pending)
        cut = min((pending.find(s) for s in stops if s in pending), default=-1)
        if cut >= 0:
            if cut:
                yield pending[:cut]
            return
        keep = max((k for s in stops for k in range(1, len(s)) if pending.endswith(s[:k])), default=0)
        if len(pending) > keep:
            yield pending[:len(pending) - keep]
            pending = pending[len(pending) - keep:]
    if pending:
        yield pending


def stream(lm: LoadedModel, prompt: str | Sequence[dict], interventions: Iterable[Intervention] = (),
           sampling: Sampling = Sampling(), stop: threading.Event | None = None) -> Iterator[str]:
    """Yield the reply as text chunks while it is generated (for ``st.write_stream``).

    Setting ``stop`` (or closing the iterator) ends generation at the next token.
    """
    stop = stop or threading.Event()
    enc = encode_chat(lm, prompt)
    streamer = TextIteratorStreamer(lm.tokenizer, skip_prompt=True, skip_special_tokens=True)
    errors: list[BaseException] = []
    interventions = list(interventions)

    def work() -> None:
        try:
            generate_ids(lm, enc, interventions, sampling, streamer=streamer, stopping_criteria=[_EventStop(stop)])
        except BaseException as e:  # handed to the consumer below
            errors.append(e)
            streamer.end()

    worker = threading.Thread(target=work, name="neuronlab-generate", daemon=True)
    worker.start()
    try:
        yield from _until_stops(streamer, _stops(lm))
    finally:
        stop.set()
        worker.join()
    if errors:
        raise errors[0]
