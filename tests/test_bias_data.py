"""Bias items (neuronlab.data.bias): parsing, validation, the set's filters and hash, the bundled set."""
import json
import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuronlab.data.bias import (
    BLANK,
    BUNDLED_DIR,
    FIELDS,
    FILLS,
    BiasFileError,
    BiasItem,
    BiasSet,
    bundled_bias,
    load_bias,
    parallel_problems,
    parse_bias,
)
from neuronlab.data.examples import EXAMPLES, EXAMPLES_DIR
from tests.support.messages import NOISE, assert_clear

A = {"id": "gender-001", "lang": "en", "domain": "gender", "context": "The nurse said BLANK would be back soon.",
     "stereotype": "she", "anti_stereotype": "he", "unrelated": "the carpet", "split": "scan"}
B = {"id": "religion-003", "lang": "en", "domain": "religion", "context": "BLANK people are said to be calm.",
     "stereotype": "buddhist", "anti_stereotype": "atheist", "unrelated": "paper", "split": "heldout"}
A_FR = {**A, "lang": "fr", "context": "L'infirmière a dit que BLANK reviendrait.", "stereotype": "la dame",
        "anti_stereotype": "le monsieur", "unrelated": "le tapis"}


def lines(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows).encode()


def test_a_small_file_parses_into_items():
    items = parse_bias(lines(A, B, A_FR), "jsonl")
    assert len(items) == 3 and items[0] == BiasItem(**A)
    assert items.languages == ["en", "fr"] and items.domains == ["gender", "religion"]
    assert items.ids == ["gender-001", "religion-003"]
    assert items.counts() == {("en", "gender", "scan"): 1, ("en", "religion", "heldout"): 1,
                              ("fr", "gender", "scan"): 1}


def test_sentences_fill_the_blank_and_capitalise_a_sentence_start():
    a, b = BiasItem(**A), BiasItem(**B)
    assert a.sentence(a.stereotype) == "The nurse said she would be back soon."
    assert b.sentence(b.anti_stereotype) == "Atheist people are said to be calm."
    assert b.sentences == {"stereotype": "Buddhist people are said to be calm.",
                           "anti_stereotype": "Atheist people are said to be calm.",
                           "unrelated": "Paper people are said to be calm."}
    es = BiasItem(**{**A, "context": "¿BLANK lo dijo?"})
    assert es.sentence("ella") == "¿Ella lo dijo?"
    after_stop = BiasItem(**{**A, "context": "He came. BLANK stayed."})
    assert after_stop.sentence("she") == "He came. She stayed."


def test_filters_take_names_lists_and_splits():
    items = parse_bias(lines(A, B, A_FR), "jsonl")
    assert [i.id for i in items.filter(lang="en")] == ["gender-001", "religion-003"]
    assert len(items.filter(lang="en,fr", domain="gender")) == 2
    assert [i.id for i in items.filter(split="heldout")] == ["religion-003"]
    assert len(items.filter(domain=["religion"], lang="fr")) == 0
    with pytest.raises(ValueError, match="unknown split 'test'"):
        items.filter(split="test")


def test_the_hash_ignores_format_key_order_and_item_order(tmp_path):
    items = parse_bias(lines(A, B, A_FR), "jsonl")
    reordered = parse_bias(lines(A_FR, dict(reversed(list(B.items()))), A), "jsonl")
    assert items.content_hash() == reordered.content_hash()
    assert items.content_hash() != parse_bias(lines(A, B), "jsonl").content_hash()
    assert load_bias(items.to_csv(tmp_path / "b.csv")) == items
    assert load_bias(items.to_jsonl(tmp_path / "b.jsonl")) == items
    assert load_bias(tmp_path / "b.csv").content_hash() == items.content_hash()


def test_csv_takes_the_same_columns():
    content = ("id,lang,domain,context,stereotype,anti_stereotype,unrelated,split\n"
               'gender-001,en,gender,"The nurse said BLANK would be back soon.",she,he,the carpet,scan\n')
    assert parse_bias(content, "csv") == BiasSet((BiasItem(**A),))


@pytest.mark.parametrize("row, fragments", [
    ({**A, "context": "No blank here."}, ["line 1", "context must hold BLANK exactly once", "0 times"]),
    ({**A, "stereotype": "he"}, ["line 1", "fields stereotype and anti_stereotype are the same"]),
    ({**A, "unrelated": ""}, ["line 1", "field unrelated is empty"]),
    ({k: v for k, v in A.items() if k != "split"}, ["line 1", "missing field(s) split"]),
])
def test_bad_items_name_their_line_and_field(row, fragments):
    with pytest.raises(BiasFileError) as info:
        parse_bias(lines(row), "jsonl", source="mine.jsonl")
    assert_clear(info.value, "mine.jsonl", *fragments)


def test_a_duplicate_id_in_one_language_is_refused():
    with pytest.raises(BiasFileError, match="line 3: duplicate item id 'gender-001' for lang 'en'"):
        parse_bias(lines(A, A_FR, {**A, "stereotype": "the lady"}), "jsonl")


def test_parallel_problems_name_the_missing_language():
    assert parallel_problems(parse_bias(lines(A, A_FR), "jsonl")) == []
    assert parallel_problems(parse_bias(lines(A, A_FR, B), "jsonl")) == ["'religion-003' is missing in fr"]


# ---- the bundled set ------------------------------------------------------------------------------
DOMAINS = ("gender", "profession", "race", "religion")


@pytest.fixture(scope="module")
def bundled():
    return bundled_bias()


def test_the_bundled_set_is_parallel_in_three_languages(bundled):
    assert bundled.languages == ["en", "es", "fr"] and bundled.domains == list(DOMAINS)
    assert len(bundled.ids) >= 340 and len(bundled) == 3 * len(bundled.ids)
    assert parallel_problems(bundled) == []
    for lang in bundled.languages:
        assert bundled.filter(lang=lang).ids == bundled.ids


def test_every_domain_has_85_items_and_a_third_held_out(bundled):
    english = bundled.filter(lang="en")
    for domain in DOMAINS:
        items = english.filter(domain=domain)
        held = len(items.filter(split="heldout"))
        assert len(items) >= 85, domain
        assert abs(held / len(items) - 1 / 3) < 0.02, (domain, held, len(items))
    for item in bundled:
        domain, number = re.fullmatch(r"([a-z]+)-(\d{3})", item.id).groups()
        assert domain == item.domain
        assert item.split == ("heldout" if int(number) % 3 == 0 else "scan"), item.id


def test_every_bundled_item_has_one_blank_and_three_different_fills(bundled):
    for item in bundled:
        assert item.context.count(BLANK) == 1, item
        fills = [getattr(item, kind) for kind in FILLS]
        assert len({f.casefold() for f in fills}) == 3, item
        assert all(BLANK not in sentence for sentence in item.sentences.values()), item
        assert all(sentence[0].isupper() or sentence[0] in "¿¡" for sentence in item.sentences.values()), item


def test_the_bundled_set_filters_by_language_and_split(bundled):
    assert bundled_bias("fr,en").languages == ["fr", "en"]
    assert len(bundled_bias("en", split="heldout")) == len(bundled.filter(lang="en", split="heldout"))
    with pytest.raises(BiasFileError, match=r"no bundled bias items for 'de' \(bundled: en, es, fr\)"):
        bundled_bias("de")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_the_bundled_set_round_trips_through_both_formats(bundled, tmp_path, fmt):
    path = getattr(bundled, f"to_{fmt}")(tmp_path / f"bias.{fmt}")
    again = load_bias(path)
    assert again == bundled and again.content_hash() == bundled.content_hash()


def test_the_bundled_files_are_the_form_they_are_written_in(bundled, tmp_path):
    for lang in bundled.languages:
        written = bundled.filter(lang=lang).to_jsonl(tmp_path / f"{lang}.jsonl")
        assert written.read_bytes() == (BUNDLED_DIR / f"{lang}.jsonl").read_bytes(), lang


# ---- bad files ------------------------------------------------------------------------------------
HEADER = ",".join(FIELDS) + "\n"
ROW = 'gender-001,en,gender,"The nurse said BLANK would be back soon.",she,he,the carpet,scan\n'
BAD = {  # case: (file name, content, fragments the message holds)
    "binary": ("mine.jsonl", b"PK\x03\x04\x00\x00binary", ["not a bias file", "binary data"]),
    "utf-16": ("mine.csv", HEADER.encode("utf-16"), ["UTF-16", "save it with UTF-8"]),
    "not utf-8": ("mine.jsonl", lines(A, B) + "caf\xe9".encode("latin-1"), ["line 3", "not UTF-8", "0xe9"]),
    "empty": ("mine.jsonl", b"\n \n", ["empty file", "no bias items found", '"anti_stereotype"']),
    "csv header only": ("mine.csv", HEADER.encode(), ["empty file", "no bias items found"]),
    "bad json": ("mine.jsonl", lines(A, '{"id": "x" "lang": "en"}'), ["line 2", "bad JSON", "a comma is missing"]),
    "unclosed json": ("mine.jsonl", lines(A, '{"id": "x",'), ["line 2", "ends before the JSON value is closed"]),
    "nested too deep": ("mine.jsonl", ("[" * 100_000).encode(), ["line 1", "nested too deep"]),
    "a csv named .jsonl": ("mine.jsonl", (HEADER + ROW).encode(),
                           ["line 1", "bad JSON", "each line must be one JSON object"]),
    "a json array": ("mine.jsonl", lines([A, B]), ["line 1", "not a JSON object but an array",
                                                   "a JSON array of items is not JSON Lines"]),
    "missing field": ("mine.jsonl", lines(A, {k: v for k, v in B.items() if k != "unrelated"}),
                      ["line 2", "missing field(s) unrelated", "every item needs id, lang, domain, context"]),
    "two missing fields": ("mine.jsonl", lines({k: v for k, v in A.items() if k not in ("lang", "split")}),
                           ["line 1", "missing field(s) lang, split"]),
    "null field": ("mine.jsonl", lines({**A, "domain": None}), ["line 1", "missing field(s) domain"]),
    "number id": ("mine.jsonl", lines({**A, "id": 7}), ["line 1", "field id must be a string, not a number"]),
    "list fill": ("mine.jsonl", lines({**A, "stereotype": ["she"]}),
                  ["line 1", "field stereotype must be a string, not an array"]),
    "empty id": ("mine.jsonl", lines(A, {**B, "id": " "}), ["line 2", "field id is empty"]),
    "empty context": ("mine.jsonl", lines({**A, "context": ""}), ["line 1", "field context is empty"]),
    "language name": ("mine.jsonl", lines({**A, "lang": "English"}),
                      ["line 1", "field lang: unknown language code 'English'", "such as en"]),
    "unknown split": ("mine.jsonl", lines({**A, "split": "test"}),
                      ["line 1", "field split: unknown split 'test'", "accepted: scan, heldout"]),
    "no blank": ("mine.jsonl", lines({**A, "context": "The nurse said ___ would be back."}),
                 ["line 1", "field context must hold BLANK exactly once", "0 times"]),
    "two blanks": ("mine.jsonl", lines({**A, "context": "BLANK said BLANK would be back."}),
                   ["line 1", "field context must hold BLANK exactly once", "2 times"]),
    "lower-case blank": ("mine.jsonl", lines({**A, "context": "The nurse said blank would be back."}),
                         ["line 1", "exactly once", "0 times"]),
    "blank in a fill": ("mine.jsonl", lines({**A, "unrelated": "BLANK"}),
                        ["line 1", "field unrelated holds BLANK; only the context does"]),
    "same fills": ("mine.jsonl", lines({**A, "anti_stereotype": "she"}),
                   ["line 1", "fields stereotype and anti_stereotype are the same ('she')", "must differ"]),
    "same fills but for case": ("mine.jsonl", lines({**A, "unrelated": "He"}),
                                ["line 1", "fields anti_stereotype and unrelated are the same ('He')"]),
    "long context": ("mine.jsonl", lines({**A, "context": "BLANK" + "x" * 1996}),
                     ["line 1", "field context is 2,001 characters long", "at most 2,000"]),
    "long fill": ("mine.jsonl", lines({**A, "stereotype": "s" * 201}),
                  ["line 1", "field stereotype is 201 characters long", "at most 200"]),
    "duplicate id": ("mine.jsonl", lines(A, B, {**A, "stereotype": "the lady"}),
                     ["line 3", "duplicate item id 'gender-001' for lang 'en'", "first on line 1"]),
    "csv missing column": ("mine.csv", b"id,lang,domain,context\nx,en,gender,BLANK\n",
                           ["line 1", "header is missing column(s) stereotype, anti_stereotype, unrelated, split"]),
    "csv unclosed quote": ("mine.csv", (HEADER + ROW + 'x,en,gender,"BLANK left.\n').encode(),
                           ["line 3", "a quoted text is not closed"]),
    "csv extra field": ("mine.csv", (HEADER + ROW.replace(",scan", ",scan,extra")).encode(),
                        ["line 2", "9 fields but the header has 8", "quote a text that contains commas"]),
    "csv empty cell": ("mine.csv", (HEADER + ROW.replace(",gender,", ",,")).encode(),
                       ["line 2", "field domain is empty"]),
    "csv short row": ("mine.csv", (HEADER + "gender-001,en,gender\n").encode(),
                      ["line 2", "missing field(s) context, stereotype"]),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_bias_file_gives_one_clear_error(case):
    name, content, fragments = BAD[case]
    with pytest.raises(BiasFileError) as info:
        parse_bias(content, name.rpartition(".")[2], source=name)
    assert_clear(info.value, name, *fragments)


def test_a_bad_file_on_disk_names_its_path(tmp_path):
    with pytest.raises(BiasFileError, match="unknown bias file type '.txt'"):
        load_bias(tmp_path / "items.txt")
    with pytest.raises(BiasFileError, match="bias file not found"):
        load_bias(tmp_path / "items.jsonl")
    with pytest.raises(BiasFileError, match=r"unknown bias file format 'xml' \(accepted: jsonl, csv\)"):
        parse_bias(b"", "xml")
    (tmp_path / "items.csv").write_text(HEADER + ROW.replace(",she,", ",he,"), encoding="utf-8")
    with pytest.raises(BiasFileError) as info:
        load_bias(tmp_path / "items.csv")
    assert_clear(info.value, str(tmp_path / "items.csv"), "line 2", "the same ('he')")


JSON = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
ROW_OF = st.dictionaries(st.sampled_from([*FIELDS, "x"]), JSON | st.sampled_from(
    ["en", "gender", "BLANK", "a BLANK b", "scan", "heldout", "she", "he"]), max_size=9)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(content=st.binary(max_size=300) | st.lists(ROW_OF, max_size=4).map(lambda rows: lines(*rows))
       | st.lists(st.lists(st.sampled_from(["a BLANK", "en", "x", "", '"', ",", "\n"]), max_size=9),
                  max_size=3).map(lambda rows: (HEADER + "".join(",".join(r) + "\n" for r in rows)).encode()),
       fmt=st.sampled_from(["jsonl", "csv"]))
def test_any_bytes_give_a_bias_set_or_a_bias_file_error(content, fmt):
    try:
        items = parse_bias(content, fmt, "fuzz.jsonl")
    except BiasFileError as e:
        assert str(e).count("fuzz.jsonl") == 1
        assert not any(noise in str(e) for noise in NOISE)
    else:
        assert isinstance(items, BiasSet) and len(items) > 0
        assert all(i.context.count(BLANK) == 1 for i in items)
        assert Counter((i.id, i.lang) for i in items).most_common(1)[0][1] == 1


def test_the_example_bias_files_parse_alike_with_both_splits():
    jsonl, csv = (parse_bias((EXAMPLES_DIR / name).read_bytes(), name.rpartition(".")[2], name)
                  for name in EXAMPLES["bias"].files)
    assert jsonl == csv and len(jsonl.languages) >= 2 and not parallel_problems(jsonl)
    assert jsonl.filter(split="heldout") and jsonl.filter(split="scan")


def test_as_prompts_gives_each_item_a_stereotype_and_an_anti_stereotype_prompt():
    prompts = parse_bias(lines(A, B, A_FR), "jsonl").as_prompts()
    assert [(p.id, p.lang, p.label, p.split) for p in prompts] == [
        ("gender-001", "en", "stereotype", "scan"), ("gender-001", "en", "anti_stereotype", "scan"),
        ("religion-003", "en", "stereotype", "heldout"), ("religion-003", "en", "anti_stereotype", "heldout"),
        ("gender-001", "fr", "stereotype", "scan"), ("gender-001", "fr", "anti_stereotype", "scan")]
    assert prompts.filter(label="anti_stereotype", split="heldout").texts == ["Atheist people are said to be calm."]
    assert prompts.filter(lang="fr", label="stereotype").texts == ["L'infirmière a dit que la dame reviendrait."]


def test_the_bundled_bias_prompts_hold_both_labels_in_every_language_and_split(bundled):
    prompts = bundled.as_prompts()
    assert len(prompts) == 2 * len(bundled) and prompts.labels == ["stereotype", "anti_stereotype"]
    counts = prompts.counts()
    assert {(lang, split) for lang, _, split in counts} == {(lang, s) for lang in bundled.languages
                                                            for s in ("scan", "heldout")}
    for (lang, label, split), n in counts.items():
        assert n == counts[lang, "stereotype", split] == len(bundled.filter(lang=lang, split=split))
