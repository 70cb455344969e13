"""The one JSON Lines reader: rows survive characters that str.splitlines() would break at."""
import json

import pytest

from neuronlab.data.jsonl import JsonLinesError, json_lines
from neuronlab.data.prompts import parse_prompts
from neuronlab.evaluation.replies import ReplyLog, read_replies, rejudge

# line and paragraph separators, next line, vertical tab, form feed, file/group/record separators
SEPARATORS = "\u2028\u2029\u0085\x0b\x0c\x1c\x1d\x1e"


def test_rows_holding_unicode_line_separators_stay_whole():
    rows = [{"text": f"a{c}b"} for c in SEPARATORS]
    content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    assert [row for _, row in json_lines(content)] == rows


def test_bad_lines_name_their_number_and_kind():
    with pytest.raises(JsonLinesError) as info:
        list(json_lines('{"a": 1}\n\n[1, 2]\n'))
    assert (info.value.line, info.value.kind) == (3, "object")
    with pytest.raises(JsonLinesError) as info:
        list(json_lines('{"a": 1}\n{"a": \n'))
    assert (info.value.line, info.value.kind) == (2, "json")


def test_a_saved_reply_with_a_line_separator_is_rejudged(tmp_path):
    """Replies are written with ensure_ascii=False; reading them back must not split a reply at U+2028."""
    path = tmp_path / "replies.jsonl"
    row = {"variant": "effect", "lang": "en", "label": "harmful", "id": "1", "prompt": "p",
           "reply": "I can't help with that.\u2028Sorry.", "refusal": True, "reply_lang": "en"}
    with ReplyLog(path) as log:
        log.write(row)
    assert read_replies(path) == [row]
    assert rejudge(read_replies(path))["effect"]["en"]["harmful"]["changed"] == 0


def test_a_prompt_file_with_a_line_separator_parses():
    rows = [{"id": str(i), "lang": "en", "label": label, "text": f"{label}\u2028two"}
            for i, label in enumerate(["harmful", "harmless"])]
    prompts = parse_prompts("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "jsonl")
    assert prompts.texts == ["harmful\u2028two", "harmless\u2028two"]
