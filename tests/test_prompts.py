"""Prompt sets: the bundled files, the content hash, filters, user files and their error messages."""
import csv
import json
import re
from dataclasses import replace

import pytest

from neuronlab.data.prompts import (
    BUNDLED_LANGUAGES,
    Prompt,
    PromptFileError,
    PromptSet,
    bundled_prompts,
    load_prompts,
    parse_prompts,
)

REQUIRED_LANGS = {"en", "zh", "ko", "th", "bn", "sw", "ne"}


@pytest.fixture(scope="module")
def bundled():
    return bundled_prompts()


# ---- bundled set --------------------------------------------------------------------------------

def test_bundled_languages(bundled):
    assert len(BUNDLED_LANGUAGES) >= 8
    assert REQUIRED_LANGS <= set(BUNDLED_LANGUAGES)
    assert set(bundled.languages) == set(BUNDLED_LANGUAGES)


def test_bundled_counts_per_language(bundled):
    counts = bundled.counts()
    for lang in BUNDLED_LANGUAGES:
        for label in ("harmful", "harmless"):
            scan, heldout = counts.get((lang, label, "scan"), 0), counts.get((lang, label, "heldout"), 0)
            assert scan + heldout >= 120, (lang, label)
            assert heldout >= 50, (lang, label)
            assert scan >= 50, (lang, label)


def test_bundled_ids_parallel_across_languages(bundled):
    by_lang = {lang: {p.id: (p.label, p.split, p.category) for p in bundled.filter(lang=lang)}
               for lang in BUNDLED_LANGUAGES}
    reference = by_lang["en"]
    for lang, items in by_lang.items():
        assert items == reference, lang
        assert len(items) == len(bundled.filter(lang=lang)), f"{lang}: duplicate ids"


def test_bundled_texts_non_empty_and_translated(bundled):
    assert all(p.text.strip() for p in bundled)
    english = {p.id: p.text for p in bundled.filter(lang="en")}
    for lang in set(BUNDLED_LANGUAGES) - {"en"}:
        same = [p.id for p in bundled.filter(lang=lang) if p.text == english[p.id]]
        assert not same, f"{lang}: untranslated {same[:5]}"


def test_bundled_prompts_langs_order_and_split():
    ps = bundled_prompts(["zh", "en"], split="heldout")
    assert ps.languages == ["zh", "en"]
    assert {p.split for p in ps} == {"heldout"}
    assert len(ps) == len(bundled_prompts("zh,en").filter(split="heldout"))
    with pytest.raises(PromptFileError, match=r"'xx'.*bundled: .*en"):
        bundled_prompts(["en", "xx"])


# ---- hash and filters ---------------------------------------------------------------------------

def test_content_hash_stable_and_sensitive(bundled):
    h = bundled.content_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert bundled_prompts().content_hash() == h
    assert PromptSet(reversed(list(bundled))).content_hash() == h  # order does not matter
    first = next(iter(bundled))
    for change in ({"text": first.text + "!"}, {"label": "harmless"}, {"lang": "xx"}, {"split": "heldout"},
                   {"id": first.id + "x"}):
        changed = PromptSet([replace(first, **change), *list(bundled)[1:]])
        assert changed.content_hash() != h, change


def test_content_hash_ignores_file_formatting(tmp_path):
    rows = [{"id": "a", "lang": "en", "label": "harmful", "text": "Do a bad thing."},
            {"id": "b", "lang": "en", "label": "harmless", "text": "Do a good thing."}]
    tidy = tmp_path / "tidy.jsonl"
    tidy.write_text("".join(json.dumps(r) + "\n" for r in rows))
    messy = tmp_path / "messy.jsonl"
    messy.write_text("\n\n".join(json.dumps(dict(reversed(r.items())), indent=None, separators=(" ,", " : "))
                                 for r in rows) + "\r\n\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("text,label,lang,id\nDo a bad thing.,harmful,en,a\nDo a good thing.,harmless,en,b\n")
    hashes = {load_prompts(p).content_hash() for p in (tidy, messy, plain)}
    assert len(hashes) == 1


def test_filters(bundled):
    en_harmful = bundled.filter(lang="en", label="harmful")
    assert len(en_harmful) == 120
    assert {(p.lang, p.label) for p in en_harmful} == {("en", "harmful")}
    two = bundled.filter(lang=["en", "zh"], split="scan")
    assert set(two.languages) == {"en", "zh"} and {p.split for p in two} == {"scan"}
    assert len(bundled.filter(lang="en,zh")) == len(bundled.filter(lang={"en", "zh"})) == 480
    assert len(bundled.filter(label=("harmful", "harmless"))) == len(bundled)
    assert len(bundled.filter(lang="xx")) == 0
    assert en_harmful.texts == [p.text for p in en_harmful]
    with pytest.raises(ValueError, match="harmful, harmless"):
        bundled.filter(label="harmfull")
    with pytest.raises(ValueError, match="scan, heldout"):
        bundled.filter(split="test")


def test_head_keeps_the_first_prompts_of_each_language_label_and_split(bundled):
    two = bundled.filter(lang="en,zh").head(3)
    assert set(two.counts().values()) == {3} and len(two.counts()) == 2 * 2 * 2  # 2 langs × labels × splits
    first = bundled.filter(lang="en", label="harmful", split="scan")
    assert list(two.filter(lang="en", label="harmful", split="scan")) == list(first)[:3]
    assert bundled.head(None) is bundled and bundled.head(0) is bundled


def test_parallel_head_keeps_the_same_requests_in_every_language(bundled):
    # drop the first English harmful prompt: every other language still keeps the same ids as English
    uneven = type(bundled)(p for p in bundled.filter(lang="en,fr", split="heldout")
                           if (p.lang, p.id) != ("en", "harmful-002"))
    kept = uneven.parallel_head(2)
    ids = {lang: sorted(p.id for p in kept.filter(lang=lang)) for lang in ("en", "fr")}
    assert ids["fr"] == ids["en"] and len(ids["fr"]) == 4 and "harmful-002" not in ids["fr"]
    assert bundled.parallel_head(None) is bundled


def test_prompt_set_is_immutable(bundled):
    with pytest.raises(AttributeError):
        bundled._prompts = ()
    with pytest.raises(AttributeError):
        next(iter(bundled)).text = "x"


# ---- user files ---------------------------------------------------------------------------------

TRICKY = [
    Prompt("h1", "en", "harmful", 'Text with "quotes", commas, and a\nnewline.', "scan", "weapons"),
    Prompt("s1", "en", "harmless", "Plain request.", "heldout"),
    Prompt("h1", "zh", "harmful", "怎样用 pandas 读取 CSV 文件？ \u2028 separator", "scan", "x"),
    Prompt("s1", "zh", "harmless", " 你好 ", "scan", ""),  # whitespace kept verbatim
]


def test_jsonl_round_trip(tmp_path):
    ps = PromptSet(TRICKY)
    path = ps.to_jsonl(tmp_path / "p.jsonl")
    back = load_prompts(path)
    assert back == ps
    assert back.content_hash() == ps.content_hash()
    assert load_prompts(back.to_jsonl(tmp_path / "again.jsonl")) == ps


def test_csv_round_trip(tmp_path):
    path = tmp_path / "p.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "lang", "label", "split", "category", "text"])
        writer.writeheader()
        writer.writerows(p.to_dict() for p in TRICKY)
    ps = load_prompts(path)
    assert ps == PromptSet(TRICKY)
    assert load_prompts(ps.to_jsonl(tmp_path / "p.jsonl")) == ps


def test_optional_columns_and_langs(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes("\ufeffid,lang,label,text\r\n1,en,Harmful,Bad.\r\n2,en,harmless,Good.\r\n"
                     "1,de,harmful,Böse.\r\n2,de,harmless,Gut.\r\n".encode())
    ps = load_prompts(path, langs=["de"])
    assert ps.languages == ["de"] and len(ps) == 2
    assert {(p.split, p.category) for p in ps} == {("scan", "")}
    assert [p.label for p in ps] == ["harmful", "harmless"]
    jsonl = '{"id": 1, "lang": "en", "label": "harmful", "text": "Bad."}\n' \
            '{"id": 2, "lang": "en", "label": "harmless", "text": "Good.", "split": "heldout"}'
    up = parse_prompts(jsonl.encode(), "jsonl")
    assert [(p.id, p.split) for p in up] == [("1", "scan"), ("2", "heldout")]


H = '{"id": "a", "lang": "en", "label": "harmful", "text": "Bad."}'
S = '{"id": "b", "lang": "en", "label": "harmless", "text": "Good."}'
CSV_HEAD = "id,lang,label,split,text"

MALFORMED = {  # name: (file name, content, pattern the message must match)
    "bad json": ("p.jsonl", f"{H}\n{S}\n{{\"id\": \"c\", \"lang\": \"en\",\n",
                 r"line 3: bad JSON: .*column"),
    "not an object": ("p.jsonl", f"{H}\n\n[1, 2]\n{S}\n", r"line 3: not a JSON object but an array"),
    "missing columns": ("p.jsonl", f'{H}\n{S}\n{{"id": "c", "lang": "en"}}\n',
                        r"line 3: missing column\(s\) label, text"),
    "unknown label": ("p.jsonl", f'{H}\n{S}\n{{"id": "c", "lang": "en", "label": "toxic", "text": "x"}}\n',
                      r"line 3: unknown label 'toxic' \(accepted: harmful, harmless\)"),
    "unknown split": ("p.jsonl", f'{H}\n{{"id": "c", "lang": "en", "label": "harmless", "text": "x", '
                      f'"split": "test"}}\n', r"line 2: unknown split 'test' \(accepted: scan, heldout\)"),
    "empty text": ("p.jsonl", f'{H}\n{S}\n{{"id": "c", "lang": "en", "label": "harmful", "text": ""}}\n',
                   r"line 3: empty text"),
    "blank text": ("p.jsonl", f'{H}\n{S}\n{{"id": "c", "lang": "en", "label": "harmful", "text": " \\t\\n"}}\n',
                   r"line 3: empty text"),
    "empty id": ("p.jsonl", f'{H}\n{{"id": " ", "lang": "en", "label": "harmless", "text": "x"}}\n',
                 r"line 2: empty id"),
    "empty lang": ("p.jsonl", f'{H}\n{{"id": "c", "lang": "", "label": "harmless", "text": "x"}}\n',
                   r"line 2: empty lang"),
    "text not a string": ("p.jsonl", f'{H}\n{{"id": "c", "lang": "en", "label": "harmless", "text": 5}}\n',
                          r"line 2: text must be a string, not a number"),
    "duplicate": ("p.jsonl", f"{H}\n{S}\n\n{H}\n",
                  r"line 4: duplicate prompt id 'a' for lang 'en' \(first on line 1\)"),
    "empty jsonl": ("p.jsonl", "\n  \n", r"empty file, no prompts"),
    "harmful only": ("p.jsonl", f'{H}\n{S}\n{H.replace("en", "sw")}\n',
                     r"line 3: language 'sw' has 1 harmful prompt\(s\) but no harmless ones \(a scan needs both\)"),
    "harmless only": ("p.jsonl", f'{S.replace("en", "fr")}\n{H}\n{S}\n',
                      r"line 1: language 'fr' has 1 harmless prompt\(s\) but no harmful ones"),
    "not utf-8": ("p.jsonl", f"{H}\n{S}\n".encode() + b'{"text": "\xff"}\n', r"line 3: not UTF-8"),
    "csv missing column": ("p.csv", "id,lang,text\na,en,Bad.\n", r"line 1: header is missing column\(s\) label"),
    "csv unknown label": ("p.csv", f"{CSV_HEAD}\na,en,harmful,scan,Bad.\nb,en,bad,scan,Good.\n",
                          r"line 3: unknown label 'bad'"),
    "csv line after multi-line text": ("p.csv", f'{CSV_HEAD}\na,en,harmful,scan,"Two\nlines"\n\nb,en,,scan,x\n',
                                       r"line 5: unknown label ''"),
    "csv empty text": ("p.csv", f"{CSV_HEAD}\na,en,harmful,scan,Bad.\nb,en,harmless,scan,  \n",
                       r"line 3: empty text"),
    "csv short row": ("p.csv", f"{CSV_HEAD}\na,en,harmful,scan,Bad.\nb,en,harmless\n",
                      r"line 3: missing column\(s\) text"),
    "csv unquoted comma": ("p.csv", f"{CSV_HEAD}\na,en,harmful,scan,Bad, really.\n",
                           r"line 2: 6 fields but the header has 5"),
    "csv unterminated quote": ("p.csv", f'{CSV_HEAD}\na,en,harmful,scan,Bad.\nb,en,harmless,scan,"Good.\n',
                               r"line 3: bad CSV"),
    "csv duplicate": ("p.csv", f"{CSV_HEAD}\na,en,harmful,scan,Bad.\nb,en,harmless,scan,Good.\na,en,harmful,,x\n",
                      r"line 4: duplicate prompt id 'a' for lang 'en' \(first on line 2\)"),
    "csv header only": ("p.csv", f"{CSV_HEAD}\n", r"empty file, no prompts"),
    "csv empty": ("p.csv", "", r"empty file, no prompts"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_files(tmp_path, name):
    filename, content, pattern = MALFORMED[name]
    path = tmp_path / filename
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(PromptFileError) as info:
        load_prompts(path)
    message = str(info.value)
    assert str(path) in message
    assert re.search(pattern, message), message


def test_missing_requested_language(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(f"{H}\n{S}\n{H.replace('en', 'de')}\n{S.replace('en', 'de')}\n")
    with pytest.raises(PromptFileError, match=r"p\.jsonl: no prompts in language 'ko' \(the file has: en, de\)"):
        load_prompts(path, langs=["en", "ko"])
    assert load_prompts(path, langs="de").languages == ["de"]


def test_unbalanced_language_outside_langs_is_ignored(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(f"{H}\n{S}\n{H.replace('en', 'sw')}\n")
    assert len(load_prompts(path, langs=["en"])) == 2
    with pytest.raises(PromptFileError, match="'sw'"):
        load_prompts(path)


def test_upload_names_source():
    with pytest.raises(PromptFileError, match=r"^my\.csv, line 2: unknown label"):
        parse_prompts(b"id,lang,label,text\na,en,nope,x\n", "csv", source="my.csv")
    with pytest.raises(PromptFileError, match="jsonl, csv"):
        parse_prompts("", "xml")


@pytest.mark.parametrize("name", ["prompts.txt", "prompts.xlsx", "prompts"])
def test_unknown_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text(f"{H}\n{S}\n")
    with pytest.raises(PromptFileError, match=r"\.jsonl.*\.csv"):
        load_prompts(path)


def test_missing_file(tmp_path):
    with pytest.raises(PromptFileError, match="not found"):
        load_prompts(tmp_path / "nope.jsonl")
