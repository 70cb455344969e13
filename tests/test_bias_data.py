"""Bias items (neuronlab.data.bias): parsing, validation, the set's filters and hash, the bundled set."""
import json

import pytest

from neuronlab.data.bias import BiasFileError, BiasItem, BiasSet, load_bias, parallel_problems, parse_bias
from tests.support.messages import assert_clear

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
