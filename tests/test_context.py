"""Prompts and replies are bounded by the model's context: nothing a user types can run unbounded."""
import warnings

import pytest

from neuronlab.data.prompts import MAX_PROMPT_CHARS, PromptFileError, parse_prompts
from neuronlab.models.generation import (
    ContextError,
    Sampling,
    context_length,
    encode_chat,
    encode_prompts,
    generate,
    generate_ids,
)


def test_a_huge_max_new_tokens_stops_at_the_context(tiny):
    enc = encode_chat(tiny, "hello")
    ids = generate_ids(tiny, enc, [], Sampling(max_new_tokens=10_000_000, min_new_tokens=10_000_000))
    assert ids.shape[1] == context_length(tiny)  # forced to the longest reply: exactly the context, not more


def test_a_chat_longer_than_the_context_keeps_its_newest_tokens_with_a_warning(tiny):
    with pytest.warns(UserWarning, match="oldest tokens are left out"):
        reply = generate(tiny, "word " * 5_000, sampling=Sampling(max_new_tokens=4))
    assert isinstance(reply, str)


def test_a_prompt_set_prompt_longer_than_the_context_is_refused_by_name(tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ContextError, match="'word word word.*tokens; tiny-llama reads at most 512"):
            encode_prompts(tiny, ["hi", "word " * 5_000])


def test_a_prompt_file_line_longer_than_the_limit_is_refused_naming_it():
    line = '{"id": "long-1", "lang": "en", "label": "harmful", "text": "%s"}' % ("x" * (MAX_PROMPT_CHARS + 1))
    with pytest.raises(PromptFileError, match="line 1: prompt 'long-1' is 20,001 characters long"):
        parse_prompts(line + "\n", "jsonl")
