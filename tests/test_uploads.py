"""Uploaded files: every bad file gives one clear error of its reader's class that names the file once and
says what is wrong; the example files shown beside the uploaders parse, and the example patch applies."""
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save

from neuronlab.data.examples import EXAMPLES, EXAMPLES_DIR
from neuronlab.data.prompts import LABELS, PromptFileError, parse_prompts
from neuronlab.data.tables import FORMATS
from neuronlab.neurons.patches import FORMAT, NOT_A_PATCH, Patch, PatchError, apply_patch, changes_nothing, check_patch
from neuronlab.neurons.sets import NeuronSetError, read_neuron_sets
from tests.support.messages import NOISE as JSON_NOISE
from tests.support.messages import assert_clear

H = {"id": "a", "lang": "en", "label": "harmful", "text": "Bad."}
S = {"id": "b", "lang": "en", "label": "harmless", "text": "Good."}


def lines(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


# ---- prompt files --------------------------------------------------------------------------------
BAD_PROMPTS = {  # case: (file name, content, fragments the message holds)
    "binary": ("my-prompts.jsonl", b"PK\x03\x04\x00\x00binary", ["not a prompt file", "binary data"]),
    "utf-16": ("my-prompts.csv", "id,lang,label,text\n".encode("utf-16"), ["UTF-16", "save it with UTF-8"]),
    "not utf-8": ("my-prompts.jsonl", lines(H, S) + "caf\xe9".encode("latin-1"), ["line 3", "not UTF-8"]),
    "empty": ("my-prompts.jsonl", b"\n \n", ["empty file", '"label": harmful|harmless']),
    "bad json": ("my-prompts.jsonl", lines(H, S, '{"id": "c", "lang": "en" "label": "harmful"}'),
                 ["line 3", "bad JSON", "a comma is missing", "column 26"]),
    "unclosed json": ("my-prompts.jsonl", lines(H, S, '{"id": "c", "lang": "en",'),
                      ["line 3", "ends before the JSON value is closed"]),
    "a csv named .jsonl": ("my-prompts.jsonl", b"id,lang,label,text\na,en,harmful,x\n",
                           ["line 1", "bad JSON", "each line must be one JSON object"]),
    "a json array": ("my-prompts.jsonl", lines([H, S]), ["line 1", "not a JSON object but an array"]),
    "missing field": ("my-prompts.jsonl", lines(H, S, {"id": "c", "lang": "en", "text": "x"}),
                      ["line 3", "missing column(s) label", "every prompt needs id, lang, label, text"]),
    "wrong label": ("my-prompts.jsonl", lines(H, {**S, "label": "safe"}),
                    ["line 2", "unknown label 'safe'", "accepted: harmful, harmless"]),
    "language name": ("my-prompts.jsonl", lines(H, {**S, "lang": "English"}),
                      ["line 2", "unknown language code 'English'", "such as en"]),
    "duplicate id": ("my-prompts.jsonl", lines(H, S, {**H, "text": "Again."}),
                     ["line 3", "duplicate prompt id 'a'", "first on line 1"]),
    "csv missing column": ("my-prompts.csv", b"id,lang,text\na,en,x\n", ["line 1", "missing column(s) label"]),
    "csv unclosed quote": ("my-prompts.csv", b'id,lang,label,text\na,en,harmful,"Bad.\n',
                           ["line 2", "a quoted text is not closed"]),
}


@pytest.mark.parametrize("case", BAD_PROMPTS)
def test_a_bad_prompt_file_gives_one_clear_error(case):
    name, content, fragments = BAD_PROMPTS[case]
    with pytest.raises(PromptFileError) as info:
        parse_prompts(content, FORMATS["." + name.rpartition(".")[2]], source=name)
    assert_clear(info.value, name, *fragments)


# ---- neuron set files ----------------------------------------------------------------------------
def sets(**named) -> bytes:
    return json.dumps({"sets": {name: {"neurons": neurons} for name, neurons in named.items()}}).encode()


BAD_SETS = {  # tiny-llama: 4 layers, MLP width 128
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00", ["not valid JSON", "binary data"]),
    "not utf-8": (b'{"sets": "caf\xe9"}', ["not valid JSON", "line 1", "not UTF-8"]),
    "empty": (b"  ", ["empty file", '{"sets"']),
    "not json": (b'{"sets": {"a": {"neurons": {"mlp": {"0": [1 2]}}}}}',
                 ["not valid JSON", "line 1, column 45", "a comma is missing"]),
    "wrong structure": (b'{"hello": 1}', ["a neuron set is", 'no "neurons" field']),
    "a list of numbers": (b"[1, 2]", ["entry 1", "not a [layer, site, index] neuron"]),
    "no sets": (b'{"sets": {}}', ["holds no neuron sets"]),
    "layer out of range": (sets(ok={"mlp": {"0": [1]}}, far={"mlp": {"4": [1]}}),
                           ["set 'far'", "(4, 'mlp', 1)", "layer out of range", "0-3"]),
    "index out of range": (sets(wide={"mlp": {"2": [128]}}), ["set 'wide'", "index out of range", "0-127"]),
    "unknown site": (sets(odd={"ffn": {"0": [1]}}), ["set 'odd'", "unknown site 'ffn'", "mlp"]),
    "index not an integer": (sets(half={"mlp": {"1": [2, 3.5]}}),
                             ["set 'half'", "site 'mlp', layer '1'", "index 3.5 is not a whole number"]),
    "index a word": (sets(word={"mlp": {"1": ["five"]}}), ["index \"five\" is not a whole number"]),
    "layer not a number": (sets(top={"mlp": {"last": [2]}}), ["site 'mlp': layer \"last\" is not a whole number"]),
    "listed index not an integer": (b'[[0, "mlp", true]]', ["entry 1: index true is not a whole number"]),
}


@pytest.mark.parametrize("case", BAD_SETS)
def test_a_bad_neuron_set_file_gives_one_clear_error(case, tiny):
    content, fragments = BAD_SETS[case]
    with pytest.raises(NeuronSetError) as info:
        read_neuron_sets(content, "my-sets.json", tiny.arch)
    assert_clear(info.value, "my-sets.json", *fragments)


def test_neuron_set_files_read_without_a_model_check_only_their_form():
    far = sets(far={"mlp": {"40": [5000]}})
    assert len(read_neuron_sets(far, "far.json")["far"]) == 1


# ---- patch files ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example_patch() -> bytes:
    return (EXAMPLES_DIR / "patch-demo-target.safetensors").read_bytes()


def bad_patches(example: bytes) -> dict[str, tuple[bytes, list[str]]]:
    foreign = save({"model.embed_tokens.weight": torch.zeros(2, 3)}, metadata={"source": "someone"})
    no_meta = save({"w": torch.zeros(2)})
    return {
        "empty": (b"", [NOT_A_PATCH, "empty"]),
        "random bytes": (bytes(range(7, 250, 3)) * 4, [NOT_A_PATCH, "not a safetensors file"]),
        "json renamed": ((EXAMPLES_DIR / "neuron_sets.json").read_bytes(), [NOT_A_PATCH, "JSON text"]),
        "cut in the header": (example[:100], [NOT_A_PATCH, "cut short"]),
        "cut in the weights": (example[:-1000], [NOT_A_PATCH, "cut short"]),
        "model weights": (foreign, [NOT_A_PATCH, "without NeuronLab's metadata"]),
        "no metadata": (no_meta, [NOT_A_PATCH, "without NeuronLab's metadata"]),
        "damaged metadata": (save({"w": torch.zeros(2)}, metadata={"format": FORMAT, "meta": "[1"}),
                             ["a damaged NeuronLab patch"]),
        "float neuron list": (save({"neurons.mlp": torch.zeros(1, 2)}, metadata={"format": FORMAT}),
                              ["a damaged NeuronLab patch", "not integers"]),
    }


def test_a_file_that_is_not_a_patch_gives_one_clear_error(example_patch):
    for case, (content, fragments) in bad_patches(example_patch).items():
        with pytest.raises(PatchError) as info:
            Patch.from_bytes(content, "my-patch.safetensors")
        assert_clear(info.value, "my-patch.safetensors", *fragments)


def test_a_patch_for_another_model_names_both(example_patch, tiny):
    patch = Patch.from_bytes(example_patch, "my-patch.safetensors")
    with pytest.raises(PatchError) as info:
        check_patch(tiny, patch)
    assert_clear(info.value, "my-patch.safetensors", "made for a model with fingerprint", "(demo-target)",
                 "not for tiny-llama", "load the model it was made for")
    unbound = Patch(patch.neurons, patch.tensors, {"architecture": patch.meta["architecture"]}, patch.source)
    with pytest.raises(PatchError) as info:
        check_patch(tiny, unbound)  # no fingerprint to go by: the neurons do not exist in tiny-llama
    assert_clear(info.value, "my-patch.safetensors", "do not fit tiny-llama", "layer out of range")


def test_a_patch_of_the_wrong_shape_says_so(smol, example_patch):
    patch = Patch.from_bytes(example_patch, "my-patch.safetensors")
    key = next(iter(patch.tensors))
    narrow = Patch(patch.neurons, {**patch.tensors, key: torch.zeros(3, 7)}, patch.meta, patch.source)
    with pytest.raises(PatchError) as info:
        check_patch(smol, narrow)
    assert_clear(info.value, "my-patch.safetensors", key, "does not fit the model's", "another size")


# ---- example files -------------------------------------------------------------------------------
def test_the_example_prompt_files_parse_alike():
    jsonl, csv = (parse_prompts((EXAMPLES_DIR / name).read_bytes(), FORMATS["." + name.rpartition(".")[2]], name)
                  for name in EXAMPLES["prompts"].files)
    assert jsonl == csv
    assert len(jsonl.languages) >= 2
    assert all(jsonl.filter(lang=lang, label=label) for lang in jsonl.languages for label in LABELS)


def test_the_example_neuron_sets_fit_demo_target(smol):
    (name,) = EXAMPLES["neuron_sets"].files
    found = read_neuron_sets((EXAMPLES_DIR / name).read_bytes(), name, smol.arch)
    assert len(found) >= 2 and all(len(s) > 0 for s in found.values())


def test_the_example_patch_applies_to_demo_target_and_reverts_bit_for_bit(smol, example_patch):
    assert len(example_patch) < 200_000
    patch = check_patch(smol, Patch.from_bytes(example_patch, "patch-demo-target.safetensors"))
    assert not changes_nothing(smol, patch)
    before = {k: v.clone() for k, v in smol.model.state_dict().items()}
    undo = apply_patch(smol, patch)
    try:
        assert changes_nothing(smol, patch)  # the patch's values are in
    finally:
        apply_patch(smol, undo, check_fingerprint=False)
    after = smol.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


# ---- any bytes -----------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)
PROMPT_ROW = st.dictionaries(st.sampled_from(["id", "lang", "label", "text", "split", "category", "x"]),
                             JSON | st.sampled_from(["en", "harmful", "harmless", "heldout", "hi"]), max_size=6)
NEURONS = st.recursive(st.integers(-2, 40) | st.sampled_from(["mlp", "attn_q", "0", "x"]) | JSON,
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.sampled_from(["sets", "neurons", "mlp", "0", "1", "name"]), inner,
                                         max_size=3), max_leaves=15)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(content=st.binary(max_size=300) | st.lists(PROMPT_ROW, max_size=4).map(lambda rows: lines(*rows)),
       fmt=st.sampled_from(["jsonl", "csv"]))
def test_any_bytes_give_a_prompt_set_or_a_prompt_file_error(content, fmt):
    try:
        parse_prompts(content, fmt, "fuzz.jsonl")
    except PromptFileError as e:
        assert str(e).count("fuzz.jsonl") == 1
        assert not any(noise in str(e) for noise in JSON_NOISE)


@FUZZ
@given(content=st.binary(max_size=300) | NEURONS.map(lambda data: json.dumps(data).encode()))
def test_any_bytes_give_neuron_sets_or_a_neuron_set_error(content, tiny):
    try:
        read_neuron_sets(content, "fuzz.json", tiny.arch)
    except NeuronSetError as e:
        assert str(e).count("fuzz.json") == 1
        assert not any(noise in str(e) for noise in JSON_NOISE)


@st.composite
def patch_files(draw) -> bytes:
    """Safetensors files with NeuronLab metadata and drawn neurons, weights and meta, sometimes cut short."""
    rows = draw(st.lists(st.tuples(st.integers(-1, 5), st.integers(-1, 130)), max_size=4))
    dtype = draw(st.sampled_from([torch.int64, torch.int32, torch.float32]))
    tensors = {"neurons.mlp": torch.tensor(rows, dtype=dtype).reshape(-1, 2)}
    for key in draw(st.lists(st.sampled_from(["0.mlp.mlp.up_proj.weight", "0.mlp.mlp.down_proj.weight", "x"]),
                             max_size=2, unique=True)):
        tensors[key] = torch.zeros(draw(st.integers(0, 3)), draw(st.integers(1, 70)))
    meta = draw(st.dictionaries(st.sampled_from(["target_fingerprint", "architecture", "target"]), JSON, max_size=3))
    content = save(tensors, metadata={"format": FORMAT, "meta": json.dumps(meta)})
    return content[:draw(st.integers(0, len(content)))] if draw(st.booleans()) else content


@FUZZ
@given(content=st.binary(max_size=300) | patch_files())
def test_any_bytes_give_a_patch_or_a_patch_error(content, tiny):
    try:
        check_patch(tiny, Patch.from_bytes(content, "fuzz.safetensors"))
    except PatchError as e:
        assert str(e).count("fuzz.safetensors") == 1
        assert not any(noise in str(e) for noise in JSON_NOISE)
