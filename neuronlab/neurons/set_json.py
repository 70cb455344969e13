"""Neuron set files' JSON: the text parsed, and the fields read from it (a set's name, layers, indices)
checked, each problem a NeuronSetError in plain words."""
from __future__ import annotations

import json
import re

from neuronlab.errors import NeuronLabError, UnreadableText, decode_text, json_kind, json_problem

SCHEMA = ('JSON: {"sets": {NAME: {"neurons": {SITE: {LAYER: [INDEX, ...]}}}}} (SITE e.g. mlp; LAYER and '
          'INDEX count from 0), or one set {"neurons": ...}')
WHOLE = re.compile(r"-?\d+")
MAX_NUMBER = 2**31 - 1  # the largest layer or index a file may name (no model has more neurons per layer)


class NeuronSetError(NeuronLabError):
    """A neuron set that is malformed or does not fit a model."""


def shown(value, limit: int = 60) -> str:
    """A JSON value as a message quotes it, cut to about ``limit`` characters (its kind if too deep to write)."""
    try:
        text = json.dumps(value)
    except (RecursionError, ValueError):  # nested too deep, or an integer too long to write out
        return json_kind(value)
    return text if len(text) < limit else text[:limit - 4] + " ..."


def set_name(value) -> str:
    if not isinstance(value, str):  # a set's "name" read from a file
        raise NeuronSetError(f'"name" {shown(value, 40)} is not a string; a set\'s name is text in double quotes')
    return value


def whole_number(value, what: str, key: bool = False) -> int:
    """A layer or index read from a file: an integer from 0 to MAX_NUMBER (a ``key``: its digits, as JSON
    object keys are text)."""
    number = value
    if key and isinstance(value, str) and WHOLE.fullmatch(value):  # past 20 digits (leading zeros aside): too large anyway
        digits = int(value.lstrip("-").lstrip("0")[:21] or 0)
        number = -digits if value.startswith("-") else digits
    if not isinstance(number, int) or isinstance(number, bool):
        raise NeuronSetError(f"{what} {shown(value, 40)} is not a whole number")
    if not 0 <= number <= MAX_NUMBER:
        raise NeuronSetError(f"{what} {shown(value, 24)} is " + ("negative; layers and indices count from 0"
                             if number < 0 else f"too large (at most {MAX_NUMBER:,})"))
    return number


def parse_json(content: str | bytes, source: str):
    """The parsed JSON of a neuron set file; raises NeuronSetError naming ``source`` and the problem."""
    try:
        text = decode_text(content)
    except UnreadableText as e:
        where = "" if e.line is None else f"line {e.line}: "
        raise NeuronSetError(f"{source}: not valid JSON: {where}{e.problem}; a neuron set file is {SCHEMA}") from None
    if not text.strip():
        raise NeuronSetError(f"{source}: empty file; a neuron set file is {SCHEMA}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        problem = f"line {e.lineno}, column {e.colno}: {json_problem(e)}"
    except RecursionError:
        problem = "brackets nested too deeply"
    except ValueError:  # an integer of thousands of digits (Python's int-from-text limit)
        problem = "a number has too many digits"
    raise NeuronSetError(f"{source}: not valid JSON: {problem}; a neuron set file is {SCHEMA}")


def named_sets(data, source: str) -> dict | None:
    """The {name: set} of a multi-set file ({"sets": {...}}, as a scan's neurons.json), else None."""
    if isinstance(data, dict) and "sets" in data and "neurons" in data:
        raise NeuronSetError(f'{source}: has both "sets" and "neurons"; a file is one set {{"neurons": ...}} or '
                             'several {"sets": {NAME: {"neurons": ...}}}, not both')
    if not isinstance(data, dict) or "sets" not in data:
        return None
    if not isinstance(data["sets"], dict):
        raise NeuronSetError(f'{source}: "sets" is {json_kind(data["sets"])}; it maps each set\'s name to a set: '
                             '{"sets": {NAME: {"neurons": ...}}}')
    return data["sets"]
