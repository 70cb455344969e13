"""Bias items: StereoSet-style intrasentence items (a context with a BLANK and three fills: a stereotype, an
anti-stereotype and an unrelated word), bundled in assets/bias or read from a JSON Lines / CSV file."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from neuronlab.data.prompts import LANG_CODE, SPLITS, Prompt, PromptSet, known_names, name_list
from neuronlab.data.tables import FileKind, content_hash, file_format, read_records, write_csv, write_jsonl
from neuronlab.errors import NeuronLabError, json_kind
from neuronlab.paths import ASSETS

FORMAT = "neuronlab.bias/1"
BLANK = "BLANK"
FILLS = ("stereotype", "anti_stereotype", "unrelated")
PROMPT_LABELS = ("stereotype", "anti_stereotype")  # the bias function's two labels, the behaviour's side first
FIELDS = ("id", "lang", "domain", "context", *FILLS, "split")  # every one required, in the order files are written
MAX_CONTEXT_CHARS = 2_000  # a sentence or two, not a document
MAX_FILL_CHARS = 200  # a word or a short phrase
SCHEMA = ('JSON Lines, one item a line: {"id", "lang", "domain", "context" (with BLANK once), "stereotype", '
          '"anti_stereotype", "unrelated", "split": scan|heldout}; CSV: the same columns')
BUNDLED_DIR = ASSETS / "bias"
BUNDLED_LANGUAGES: tuple[str, ...] = tuple(sorted(p.stem for p in BUNDLED_DIR.glob("*.jsonl")))
SENTENCE_END = re.compile(r"(^|[.!?…:]\s*)$")  # what may come before a fill that starts a sentence
OPENERS = "¿¡«\"'“‘( \u00a0"  # opening marks that may stand between a sentence start and the fill


class BiasFileError(NeuronLabError):
    """A bias file that cannot be used; the message names the source, the line and the field at fault."""


KIND = FileKind(BiasFileError, "bias file", "item", "no bias items found", SCHEMA, FIELDS, {
    "json": '; each line must be one JSON object such as {"id": "gender-001", "lang": "en", "domain": "gender", '
            '"context": "... BLANK ...", ...}',
    "object": "; each line must be one {...} object (a JSON array of items is not JSON Lines)"})


@dataclass(frozen=True)
class BiasItem:
    id: str
    lang: str
    domain: str  # gender | profession | race | religion in the bundled set; any name in an uploaded one
    context: str  # holds BLANK exactly once
    stereotype: str
    anti_stereotype: str
    unrelated: str
    split: str = "scan"  # "scan" (find neurons) | "heldout" (evaluation only)

    def sentence(self, fill: str) -> str:
        """The context with BLANK replaced by ``fill``, its first letter capitalised at a sentence start."""
        before, _, after = self.context.partition(BLANK)
        if fill and SENTENCE_END.search(before.rstrip(OPENERS)):
            fill = fill[0].upper() + fill[1:]
        return before + fill + after

    @property
    def sentences(self) -> dict[str, str]:
        """{"stereotype" | "anti_stereotype" | "unrelated": the full sentence with that fill}."""
        return {kind: self.sentence(getattr(self, kind)) for kind in FILLS}

    def to_dict(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in FIELDS}


@dataclass(frozen=True)
class BiasSet:
    """Immutable, ordered collection of bias items with filters, counts, a content hash and file output."""

    items: tuple[BiasItem, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "items", tuple(self.items))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[BiasItem]:
        return iter(self.items)

    def __getitem__(self, index: int) -> BiasItem:
        return self.items[index]

    def __repr__(self) -> str:
        return (f"<BiasSet: {len(self)} items in {', '.join(self.languages) or 'no languages'} "
                f"({', '.join(self.domains) or 'no domains'})>")

    @property
    def languages(self) -> list[str]:
        """Languages in first-seen order."""
        return list(dict.fromkeys(i.lang for i in self.items))

    @property
    def domains(self) -> list[str]:
        """Domains in first-seen order."""
        return list(dict.fromkeys(i.domain for i in self.items))

    @property
    def ids(self) -> list[str]:
        """Item ids in first-seen order (an id is shared by its translations)."""
        return list(dict.fromkeys(i.id for i in self.items))

    def filter(self, lang: str | Collection[str] | None = None, domain: str | Collection[str] | None = None,
               split: str | Collection[str] | None = None) -> BiasSet:
        """Items matching every given criterion; each is a name, 'a,b' or a collection of names."""
        langs = None if lang is None else name_list(lang)
        domains = None if domain is None else name_list(domain)
        splits = None if split is None else known_names(split, SPLITS, "split")
        return BiasSet(tuple(i for i in self.items if (langs is None or i.lang in langs)
                             and (domains is None or i.domain in domains) and (splits is None or i.split in splits)))

    def spread(self, limit: int | None) -> BiasSet:
        """At most ``limit`` items per language, evenly spaced through its items so that every domain is drawn
        from (all when limit is None or 0); parallel files give the same ids in every language."""
        if not limit:
            return self
        kept = []
        for lang in self.languages:
            items = [i for i in self.items if i.lang == lang]
            kept += [items[n * len(items) // limit] for n in range(min(limit, len(items)))]
        return BiasSet(tuple(kept))

    def counts(self) -> dict[tuple[str, str, str], int]:
        """{(lang, domain, split): number of items}, in first-seen order of language and domain."""
        counts = Counter((i.lang, i.domain, i.split) for i in self.items)
        langs = {x: n for n, x in enumerate(self.languages)}
        domains = {x: n for n, x in enumerate(self.domains)}
        return dict(sorted(counts.items(), key=lambda kv: (langs[kv[0][0]], domains[kv[0][1]], kv[0][2])))

    def content_hash(self) -> str:
        """sha256 hex of the items' fields; independent of file format, key order and item order."""
        return content_hash(FORMAT, ([getattr(i, key) for key in FIELDS] for i in self.items))

    def as_prompts(self) -> PromptSet:
        """The bias function's prompts: each item's stereotype and anti-stereotype sentences as two prompts
        labelled ``stereotype`` and ``anti_stereotype`` (a scan's two labels), keeping id, lang and split."""
        return PromptSet(Prompt(i.id, i.lang, label, i.sentence(getattr(i, label)), i.split, category=i.domain)
                         for i in self.items for label in PROMPT_LABELS)

    def to_jsonl(self, path: str | Path) -> Path:
        return write_jsonl(path, (i.to_dict() for i in self.items))

    def to_csv(self, path: str | Path) -> Path:
        return write_csv(path, FIELDS, (i.to_dict() for i in self.items))


# ---- parsing ------------------------------------------------------------------------------------

def _item(row: dict, source: str, line: int) -> BiasItem:
    missing = [key for key in FIELDS if row.get(key) is None]
    if missing:
        raise KIND.at(source, line, f"missing field(s) {', '.join(missing)} (every item needs {', '.join(FIELDS)})")
    values = {}
    for key in FIELDS:
        if not isinstance(row[key], str):
            raise KIND.at(source, line, f"field {key} must be a string, not {json_kind(row[key])}")
        values[key] = row[key].strip()
        if not values[key]:
            raise KIND.at(source, line, f"field {key} is empty")
    if not LANG_CODE.fullmatch(values["lang"]):
        raise KIND.at(source, line, f"field lang: unknown language code {values['lang']!r}: write a short "
                                   "lower-case code such as en, fr or es (ISO 639-1)")
    values["domain"] = values["domain"].lower()
    values["split"] = values["split"].lower()
    if values["split"] not in SPLITS:
        raise KIND.at(source, line, f"field split: unknown split {row['split']!r} (accepted: {', '.join(SPLITS)})")
    context = values["context"]
    if len(context) > MAX_CONTEXT_CHARS:
        raise KIND.at(source, line, f"field context is {len(context):,} characters long; a context may hold at "
                                   f"most {MAX_CONTEXT_CHARS:,}")
    if context.count(BLANK) != 1:
        raise KIND.at(source, line, f"field context must hold {BLANK} exactly once (it holds it "
                                   f"{context.count(BLANK)} times), where the three fills go")
    for key in FILLS:
        if len(values[key]) > MAX_FILL_CHARS:
            raise KIND.at(source, line, f"field {key} is {len(values[key]):,} characters long; a fill may hold at "
                                       f"most {MAX_FILL_CHARS:,}")
        if BLANK in values[key]:
            raise KIND.at(source, line, f"field {key} holds {BLANK}; only the context does")
    seen: dict[str, str] = {}
    for key in FILLS:
        other = seen.setdefault(values[key].casefold(), key)
        if other != key:
            raise KIND.at(source, line, f"fields {other} and {key} are the same ({values[key]!r}); the three "
                                       "fills must differ")
    return BiasItem(**values)


def parse_bias(content: str | bytes, fmt: str, source: str = "upload") -> BiasSet:
    """Parse JSON Lines (``fmt="jsonl"``) or CSV (``fmt="csv"``) text, e.g. an uploaded file.

    Fields, all required and non-empty: id, lang, domain, context (holding BLANK exactly once), stereotype,
    anti_stereotype, unrelated (three different fills), split (scan | heldout). Raises BiasFileError.
    """
    items = [item for _, item in read_records(content, fmt, source, KIND, lambda row, line: _item(row, source, line))]
    return BiasSet(tuple(items))


def load_bias(path: str | Path) -> BiasSet:
    """Read a .jsonl or .csv bias file (UTF-8); see parse_bias."""
    path, fmt = file_format(path, KIND)
    return parse_bias(path.read_bytes(), fmt, source=str(path))


@lru_cache(maxsize=None)
def _bundled(lang: str) -> BiasSet:
    items = load_bias(BUNDLED_DIR / f"{lang}.jsonl")
    if items.languages != [lang]:
        raise BiasFileError(f"{BUNDLED_DIR / f'{lang}.jsonl'}: holds items in {', '.join(items.languages)}; "
                            f"a bundled file holds its own language only ({lang})")
    return items


def bundled_bias(langs: str | Collection[str] | None = None, split: str | None = None) -> BiasSet:
    """The bias items shipped in assets/bias, in the order of ``langs`` (default: all bundled languages)."""
    wanted = BUNDLED_LANGUAGES if langs is None else name_list(langs)
    unknown = [lang for lang in wanted if lang not in BUNDLED_LANGUAGES]
    if unknown:
        raise BiasFileError(f"no bundled bias items for {', '.join(map(repr, unknown))} "
                            f"(bundled: {', '.join(BUNDLED_LANGUAGES) or f'none found in {BUNDLED_DIR}'})")
    items = BiasSet(tuple(i for lang in wanted for i in _bundled(lang)))
    return items if split is None else items.filter(split=split)


def parallel_problems(items: Iterable[BiasItem]) -> list[str]:
    """What keeps ``items`` from being parallel by id: an id missing from a language, or one id with two
    domains or two splits. Empty when every id is in every language with the same domain and split."""
    items = list(items)
    langs = list(dict.fromkeys(i.lang for i in items))
    by_id: dict[str, list[BiasItem]] = {}
    for i in items:
        by_id.setdefault(i.id, []).append(i)
    problems = []
    for id_, group in by_id.items():
        have = {i.lang for i in group}
        if missing := [lang for lang in langs if lang not in have]:
            problems.append(f"{id_!r} is missing in {', '.join(missing)}")
        for key in ("domain", "split"):
            if len({getattr(i, key) for i in group}) > 1:
                problems.append(f"{id_!r} has {key}s {', '.join(sorted({getattr(i, key) for i in group}))}")
    return problems
