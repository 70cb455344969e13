"""Prompt sets: harmful and harmless requests per language, bundled or read from a JSON Lines / CSV file."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from neuronlab.data.tables import FileKind, content_hash, file_format, read_records, write_csv, write_jsonl
from neuronlab.errors import NeuronLabError, json_kind
from neuronlab.paths import ASSETS

FORMAT = "neuronlab.prompts/1"
LABELS = ("harmful", "harmless")
SPLITS = ("scan", "heldout")
REQUIRED = ("id", "lang", "label", "text")
MAX_PROMPT_CHARS = 20_000  # a request, not a document: longer texts would not fit a small model's context
COLUMNS = ("id", "lang", "label", "split", "category", "text")  # the order files are written in
SCHEMA = ('JSON Lines, one prompt a line: {"id", "lang", "label": harmful|harmless, "text"} '
          '(optional "split": scan|heldout); CSV: the same columns')
LABEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # a function's label: harmful, french, ...
LANG_CODE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")  # ISO 639 code, optional subtags: en, zh-Hant
BUNDLED_DIR = ASSETS / "prompts"
BUNDLED_LANGUAGES: tuple[str, ...] = tuple(sorted(p.stem for p in BUNDLED_DIR.glob("*.jsonl")))


class PromptFileError(NeuronLabError):
    """A prompt file that cannot be used; the message names the source, the line and the problem."""


KIND = FileKind(PromptFileError, "prompt file", "prompt", "no prompts found", SCHEMA, REQUIRED, {
    "json": '; each line must be one JSON object such as {"id": "1", "lang": "en", "label": "harmless", "text": "..."}',
    "object": "; each line must be one {...} object (a JSON array of prompts is not JSON Lines)"})


@dataclass(frozen=True)
class Prompt:
    id: str
    lang: str
    label: str  # one of the function's two labels: "harmful" | "harmless" for refusal
    text: str
    split: str = "scan"  # "scan" (find neurons) | "heldout" (evaluation only)
    category: str = ""

    def to_dict(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in COLUMNS}


def name_list(value: str | Collection[str]) -> tuple[str, ...]:
    """'en' / 'en,es' / ['en', 'es'] -> ('en', 'es'), in the given order without repeats."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(dict.fromkeys(s.strip() for s in items if s.strip()))


def known_names(value: str | Collection[str], accepted: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = name_list(value)
    unknown = [n for n in names if n not in accepted]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))} (accepted: {', '.join(accepted)})")
    return names


class PromptSet:
    """Immutable, ordered collection of prompts with filters, counts, a content hash and JSONL output."""

    __slots__ = ("_prompts",)

    def __init__(self, prompts: Iterable[Prompt] = ()):
        object.__setattr__(self, "_prompts", tuple(prompts))

    def __setattr__(self, key, value):
        raise AttributeError("a PromptSet is immutable; filter() returns a new set")

    def __len__(self) -> int:
        return len(self._prompts)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self._prompts)

    def __eq__(self, other) -> bool:
        return isinstance(other, PromptSet) and self._prompts == other._prompts

    def __hash__(self) -> int:
        return hash(self._prompts)

    def __repr__(self) -> str:
        return f"<PromptSet: {len(self)} prompts in {', '.join(self.languages) or 'no languages'}>"

    @property
    def languages(self) -> list[str]:
        """Languages in first-seen order."""
        return list(dict.fromkeys(p.lang for p in self._prompts))

    @property
    def labels(self) -> list[str]:
        """Labels in first-seen order."""
        return list(dict.fromkeys(p.label for p in self._prompts))

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self._prompts]

    def filter(self, lang: str | Collection[str] | None = None, label: str | Collection[str] | None = None,
               split: str | Collection[str] | None = None) -> PromptSet:
        """Prompts matching every given criterion; each is a name, 'a,b' or a collection of names."""
        langs = None if lang is None else name_list(lang)
        labels = None if label is None else known_names(label, tuple(dict.fromkeys([*LABELS, *self.labels])), "label")
        splits = None if split is None else known_names(split, SPLITS, "split")
        return PromptSet(p for p in self._prompts if (langs is None or p.lang in langs)
                         and (labels is None or p.label in labels) and (splits is None or p.split in splits))

    def counts(self) -> dict[tuple[str, str, str], int]:
        """{(lang, label, split): number of prompts}, languages in first-seen order."""
        counts = Counter((p.lang, p.label, p.split) for p in self._prompts)
        order = {lang: i for i, lang in enumerate(self.languages)}
        return dict(sorted(counts.items(), key=lambda kv: (order[kv[0][0]], kv[0][1], kv[0][2])))

    def head(self, limit: int | None) -> PromptSet:
        """At most ``limit`` prompts per (language, label, split), in order (all when limit is None or 0)."""
        if not limit:
            return self
        seen: Counter = Counter()
        kept = []
        for p in self._prompts:
            seen[p.lang, p.label, p.split] += 1
            if seen[p.lang, p.label, p.split] <= limit:
                kept.append(p)
        return PromptSet(kept)

    def parallel_head(self, limit: int | None) -> PromptSet:
        """The prompts whose id is among the first ``limit`` ids of their label (ids are parallel across
        languages, so every language keeps the same requests; all when limit is None or 0)."""
        if not limit:
            return self
        ids: dict[str, list[str]] = {}
        for p in self._prompts:
            if p.id not in ids.setdefault(p.label, []) and len(ids[p.label]) < limit:
                ids[p.label].append(p.id)
        keep = {i for group in ids.values() for i in group}
        return PromptSet(p for p in self._prompts if p.id in keep)

    def content_hash(self) -> str:
        """sha256 hex of the prompts' fields; independent of file format, key order and prompt order."""
        return content_hash(FORMAT, ([p.id, p.lang, p.label, p.split, p.category, p.text] for p in self._prompts))

    def to_jsonl(self, path: str | Path) -> Path:
        return write_jsonl(path, (p.to_dict() for p in self._prompts))

    def to_csv(self, path: str | Path) -> Path:
        return write_csv(path, COLUMNS, (p.to_dict() for p in self._prompts))


# ---- parsing ------------------------------------------------------------------------------------

def _prompt(row: dict, source: str, line: int, labels: tuple[str, str]) -> Prompt:
    missing = [c for c in REQUIRED if row.get(c) is None]
    if missing:
        raise KIND.at(source, line, f"missing column(s) {', '.join(missing)} (every prompt needs "
                                   f"{', '.join(REQUIRED)})")
    if isinstance(row["id"], int) and not isinstance(row["id"], bool):
        row = {**row, "id": str(row["id"])}
    values = {}
    for key in COLUMNS:
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            raise KIND.at(source, line, f"{key} must be a string, not {json_kind(value)}")
        values[key] = value or ""
    for key in ("id", "lang"):
        values[key] = values[key].strip()
        if not values[key]:
            raise KIND.at(source, line, f"empty {key}")
    if not LANG_CODE.fullmatch(values["lang"]):
        raise KIND.at(source, line, f"unknown language code {values['lang']!r}: write a short lower-case code such "
                                   "as en, zh or es (ISO 639-1)")
    label = values["label"].strip().lower()
    if label not in labels:
        raise KIND.at(source, line, f"unknown label {values['label']!r} (accepted: {', '.join(labels)})")
    split = values["split"].strip().lower() or "scan"
    if split not in SPLITS:
        raise KIND.at(source, line, f"unknown split {values['split']!r} (accepted: {', '.join(SPLITS)})")
    if not values["text"].strip():
        raise KIND.at(source, line, "empty text")
    if len(values["text"]) > MAX_PROMPT_CHARS:
        raise KIND.at(source, line, f"prompt {values['id']!r} is {len(values['text']):,} characters long; a prompt "
                                   f"may hold at most {MAX_PROMPT_CHARS:,}")
    return Prompt(values["id"], values["lang"], label, values["text"], split, values["category"].strip())


def _check_both_labels(prompts: list[Prompt], lines: list[int], source: str, labels: tuple[str, str]) -> None:
    """Every language needs prompts of both labels: a scan contrasts the two."""
    first: dict[str, int] = {}
    by_lang: dict[str, Counter] = {}
    for p, line in zip(prompts, lines):
        first.setdefault(p.lang, line)
        by_lang.setdefault(p.lang, Counter())[p.label] += 1
    for lang, have in by_lang.items():
        if len(have) < len(labels):
            (label, n), = have.items()
            other = next(x for x in labels if x != label)
            raise KIND.at(source, first[lang], f"language {lang!r} has {n} {label} prompt(s) but no {other} ones "
                                              "(a scan needs both)")


def parse_prompts(content: str | bytes, fmt: str, source: str = "upload",
                  langs: str | Collection[str] | None = None, labels: tuple[str, str] = LABELS) -> PromptSet:
    """Parse JSON Lines (``fmt="jsonl"``) or CSV (``fmt="csv"``) text, e.g. an uploaded file.

    Columns: id, lang, label (one of ``labels``: harmful | harmless for refusal), text; optional split (scan |
    heldout, default scan) and category. With ``langs``, keep those languages and require each to be present.
    Raises PromptFileError.
    """
    labels = check_labels(labels)
    rows = read_records(content, fmt, source, KIND, lambda row, line: _prompt(row, source, line, labels))
    lines, prompts = [line for line, _ in rows], [prompt for _, prompt in rows]
    if langs is not None:
        have = list(dict.fromkeys(p.lang for p in prompts))
        wanted = name_list(langs)
        for lang in wanted:
            if lang not in have:
                raise PromptFileError(f"{source}: no prompts in language {lang!r} (the file has: {', '.join(have)})")
        kept = [i for i, p in enumerate(prompts) if p.lang in wanted]
        prompts, lines = [prompts[i] for i in kept], [lines[i] for i in kept]
    _check_both_labels(prompts, lines, source, labels)
    return PromptSet(prompts)


def check_labels(labels: Collection[str]) -> tuple[str, str]:
    """A function's two labels: different, short, lower-case words (``harmful,harmless`` for refusal)."""
    names = tuple(str(x).strip().lower() for x in labels)
    if len(names) != 2 or len(set(names)) != 2 or not all(LABEL_NAME.fullmatch(n) for n in names):
        raise PromptFileError(f"labels {', '.join(map(repr, labels))}: give two different labels, each a short word "
                              "of letters, digits, - or _ (e.g. harmful,harmless)")
    return names


def load_prompts(path: str | Path, langs: str | Collection[str] | None = None,
                 labels: tuple[str, str] = LABELS) -> PromptSet:
    """Read a .jsonl or .csv prompt file (UTF-8); see parse_prompts."""
    path, fmt = file_format(path, KIND)
    return parse_prompts(path.read_bytes(), fmt, source=str(path), langs=langs, labels=labels)


@lru_cache(maxsize=None)
def _bundled(lang: str) -> PromptSet:
    return load_prompts(BUNDLED_DIR / f"{lang}.jsonl", langs=[lang])


def bundled_prompts(langs: str | Collection[str] | None = None, split: str | None = None) -> PromptSet:
    """The prompts shipped in assets/prompts, in the order of ``langs`` (default: all bundled languages)."""
    wanted = BUNDLED_LANGUAGES if langs is None else name_list(langs)
    unknown = [lang for lang in wanted if lang not in BUNDLED_LANGUAGES]
    if unknown:
        raise PromptFileError(f"no bundled prompts for {', '.join(map(repr, unknown))} "
                              f"(bundled: {', '.join(BUNDLED_LANGUAGES) or f'none found in {BUNDLED_DIR}'})")
    prompts = PromptSet(p for lang in wanted for p in _bundled(lang))
    return prompts if split is None else prompts.filter(split=split)
