"""Errors a user can act on, with messages that say what was wrong and what is accepted."""
from __future__ import annotations

import json


class NeuronLabError(ValueError):
    """Base of every error a user can act on: its message says what was wrong and what is accepted. Front
    ends show the message alone (no traceback); anything else is a bug."""


class ModelSpecError(NeuronLabError):
    """A model spec that cannot be loaded."""


class UnreadableText(NeuronLabError):
    """File content that is not UTF-8 text; ``line`` is where it stops being text (None: binary data)."""

    def __init__(self, problem: str, line: int | None = None):
        super().__init__(problem)
        self.problem, self.line = problem, line


def decode_text(content: str | bytes) -> str:
    """A file's content as text (a UTF-8 byte-order mark dropped). Raises UnreadableText."""
    if isinstance(content, bytes):
        if content.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise UnreadableText("the file is UTF-16 text, not UTF-8; save it with UTF-8 encoding")
        if b"\x00" in content:
            raise UnreadableText("the file holds binary data, not text (is it the right file?)")
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as e:
            line = content[:e.start].count(b"\n") + 1
            raise UnreadableText(f"not UTF-8 text (byte 0x{content[e.start]:02x} at position {e.start}); "
                                 "save the file with UTF-8 encoding", line) from None
    return content.removeprefix("\ufeff")


# json's messages, by prefix, in plain words
_JSON_PROBLEMS = (
    ("Unterminated string", "a text is not closed with a double quote"),
    ("Extra data", "something follows the end of the JSON value"),
    ("Expecting property name", "a field name is not in double quotes, or a comma stands before '}'"),
    ("Expecting ':'", "a colon ':' is missing after a field name"),
    ("Expecting ','", "a comma is missing between two values"),
    ("Invalid control character", "a text holds a raw tab or line break (write \\t or \\n)"),
    ("Invalid \\", "a backslash starts no valid escape (write \\\\ for a backslash)"),
    ("Expecting value", "a value is missing or is not JSON (texts go in double quotes)"),
)


def json_problem(error: json.JSONDecodeError) -> str:
    """What is wrong with JSON text, in plain words (the caller says where: error.lineno, error.colno)."""
    if not error.doc[error.pos:].strip():
        return "the text ends before the JSON value is closed" if error.doc.strip() else "no JSON value"
    return next((words for prefix, words in _JSON_PROBLEMS if error.msg.startswith(prefix)), error.msg)


def json_kind(value) -> str:
    """'an array', 'a string', ... : what a JSON value is, for messages."""
    kinds = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
             bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a value")
