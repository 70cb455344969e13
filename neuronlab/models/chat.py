"""The one place text becomes token ids: chat turns (``chat_ids``) and plain text (``text_ids``).

Text a user wrote (a chat message, a prompt file, a training reply) is never parsed for special tokens: a literal
``<|im_start|>`` or ``<start_of_turn>`` in it is encoded as the ordinary text it is, so a prompt cannot forge a
system or assistant turn. Only the chat template's own markers become special tokens. Text without special-token
strings encodes exactly as ``tokenizer(text)`` / ``tokenizer(apply_chat_template(...))`` would.
"""
from __future__ import annotations

import re
import secrets
import threading
import weakref
from collections.abc import Sequence

from neuronlab.errors import NeuronLabError
from neuronlab.models.loading import LoadedModel

# transformers keeps "split special tokens" as a flag on the shared backend tokenizer and sets it on every call:
# encodes here set it explicitly under this lock, so two threads never see each other's setting
_ENCODE = threading.Lock()
_SPECIALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def as_messages(prompt: str | Sequence[dict]) -> list[dict]:
    """A user prompt, or a list of {"role", "content"} messages, as messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def plain_chat(messages: Sequence[dict]) -> str:
    """The plain-text frame used for models without a chat template."""
    lines = [f"{'Assistant' if m['role'] == 'assistant' else m['role'].capitalize()}: {m['content']}"
             for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def chat_text(lm: LoadedModel, prompt: str | Sequence[dict]) -> str:
    """The prompt as the model sees it at the start of its reply (chat template or plain frame), for display;
    the model gets ``chat_ids``."""
    messages = as_messages(prompt)
    if lm.info.chat_template:
        return lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return plain_chat(messages)


def _encode(tok, text: str, add_special_tokens: bool, as_text: bool) -> list[int]:
    """``tok(text)["input_ids"]``; ``as_text``: special-token strings in ``text`` stay ordinary text."""
    with _ENCODE:
        return tok(text, add_special_tokens=add_special_tokens, split_special_tokens=as_text)["input_ids"]


def text_ids(lm: LoadedModel, text: str, bos: bool = False) -> list[int]:
    """Token ids of plain ``text``, special-token strings in it encoded as text; ``bos``: with the tokenizer's
    added tokens (BOS), as for a text scored from its first token."""
    return _encode(lm.tokenizer, text, bos, True)


def _special_pattern(tok) -> re.Pattern | None:
    """A regex matching any of the tokenizer's special-token strings (longest first); None when it has none."""
    try:
        return _SPECIALS[tok]
    except (KeyError, TypeError):
        pass
    specials = sorted({a.content for a in tok.added_tokens_decoder.values() if a.special and a.content},
                      key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, specials))) if specials else None
    try:
        _SPECIALS[tok] = pattern
    except TypeError:  # not weakly referenceable: recomputed next time
        pass
    return pattern


def chat_ids(lm: LoadedModel, prompt: str | Sequence[dict]) -> list[int]:
    """Token ids of the prompt as the model sees it at the start of its reply: the chat template's own markers
    as special tokens, every message's text as ordinary text (see the module doc); the plain frame, for a
    model without a chat template, is all text, with the tokenizer's added tokens (BOS)."""
    messages, tok = as_messages(prompt), lm.tokenizer
    if not lm.info.chat_template:
        return _encode(tok, plain_chat(messages), True, True)
    pattern = _special_pattern(tok)
    if pattern is None or not any(isinstance(m.get("content"), str) and pattern.search(m["content"])
                                  for m in messages):
        return _encode(tok, tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
                       False, False)
    # wrap every special-token string in the messages in a marker no text can hold, render, and encode the
    # marked strings as text and the rest (the template's markers and the other text) as usual
    mark = "\ue000" + secrets.token_hex(8)
    marked = [{**m, "content": pattern.sub(lambda s: mark + s.group(0) + mark, m["content"])}
              if isinstance(m.get("content"), str) else m for m in messages]
    pieces = tok.apply_chat_template(marked, add_generation_prompt=True, tokenize=False).split(mark)
    if len(pieces) % 2 == 0 or any(pattern.fullmatch(p) is None for p in pieces[1::2]):
        raise NeuronLabError("this model's chat template rewrites the messages' text in a way that cannot be "
                             "encoded safely: remove the special-token strings (like <|im_start|>) from the messages")
    ids: list[int] = []
    for i, piece in enumerate(pieces):
        if piece:
            ids += _encode(tok, piece, False, i % 2 == 1)
    return ids
