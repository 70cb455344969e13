"""Bad neuron set files, read as uploads and as a command line's REF (FILE.json, DIR/neurons.json#KEY): one
NeuronSetError naming the file and the problem (a name that is not text, an index that is not a whole number
in range, JSON nested too deeply, ...), exit code 2 from the CLI before any model loads; any JSON value gives a
valid NeuronSet or a NeuronSetError, nothing else."""
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuronlab.cli
from neuronlab.cli import main
from neuronlab.errors import NeuronLabError
from neuronlab.neurons.sets import NeuronSet, NeuronSetError, load_neuron_set, read_neuron_sets
from neuronlab.neurons.sites import SITES
from tests.support.messages import assert_clear


def one(neurons, **fields) -> bytes:
    return json.dumps({**fields, "neurons": neurons}).encode()


def deep(depth: int, inner: str = "", opening: str = "[", closing: str = "]") -> bytes:
    return (opening * depth + inner + closing * depth).encode()


BAD = {  # case: (content, fragments of the message)
    "name a number": (one({"mlp": {"0": [1]}}, name=5), ['"name" 5 is not a string']),
    "name a list": (one({"mlp": {"0": [1]}}, name=["en"]), ['"name" ["en"] is not a string']),
    "name false": (one({"mlp": {"0": [1]}}, name=False), ['"name" false is not a string']),
    "name null": (one({"mlp": {"0": [1]}}, name=None), ['"name" null is not a string']),
    "name an object": (one({"mlp": {"0": [1]}}, name={"a": 1}), ['"name" {"a": 1} is not a string']),
    "name nested deep": (b'{"name": ' + deep(900) + b', "neurons": {}}', ['"name" [[[[', 'is not a string']),
    "name in a set of several": (b'{"sets": {"en": {"name": 3, "neurons": {}}}}',
                                 ["set 'en'", '"name" 3 is not a string']),
    "index true": (one({"mlp": {"0": [True]}}), ["layer '0': index true is not a whole number"]),
    "index 1.0": (one({"mlp": {"0": [1.0]}}), ["index 1.0 is not a whole number"]),
    "index 3.9": (one({"mlp": {"0": [3.9]}}), ["index 3.9 is not a whole number"]),
    "index Infinity": (b'{"neurons": {"mlp": {"0": [Infinity]}}}', ["index Infinity is not a whole number"]),
    "index -Infinity": (b'{"neurons": {"mlp": {"0": [-Infinity]}}}', ["index -Infinity is not a whole number"]),
    "index NaN": (b'{"neurons": {"mlp": {"0": [NaN]}}}', ["index NaN is not a whole number"]),
    "index 1e400": (b'{"neurons": {"mlp": {"0": [1e400]}}}', ["index Infinity is not a whole number"]),
    "index a string": (one({"mlp": {"0": ["7"]}}), ['index "7" is not a whole number']),
    "index null": (one({"mlp": {"0": [None]}}), ["index null is not a whole number"]),
    "index huge": (one({"mlp": {"0": [10**22]}}), ["index 10000000000000000000000 is too large",
                                                   "at most 2,147,483,647"]),
    "index 2**31": (one({"mlp": {"0": [2**31]}}), ["index 2147483648 is too large"]),
    "index negative": (one({"mlp": {"0": [-1]}}), ["index -1 is negative", "count from 0"]),
    "index of 5000 digits": (b'{"neurons": {"mlp": {"0": [' + b"7" * 5000 + b"]}}}",
                             ["not valid JSON", "a number has too many digits"]),
    "layer of 5000 digits": (one({"mlp": {"9" * 5000: [1]}}), ["layer \"99999999999", "is too large"]),
    "layer negative": (one({"mlp": {"-1": [1]}}), ['layer "-1" is negative']),
    "layer a fraction": (one({"mlp": {"1.5": [1]}}), ['layer "1.5" is not a whole number']),
    "layer empty": (one({"mlp": {"": [1]}}), ['layer "" is not a whole number']),
    "indices not a list": (one({"mlp": {"0": 5}}), ["expected a list of indices, not a number"]),
    "site not an object": (one({"mlp": [1, 2]}), ["site 'mlp': expected {layer: [indices]}, not an array"]),
    "listed index Infinity": (b'[[0, "mlp", Infinity]]', ["entry 1: index Infinity is not a whole number"]),
    "listed layer NaN": (b'[[NaN, "mlp", 1]]', ["entry 1: layer NaN is not a whole number"]),
    "listed layer huge": (b'[[99999999999999999999, "mlp", 1]]', ["entry 1: layer", "is too large"]),
    "listed layer missing": (b'[{"site": "mlp", "index": 1}]', ["entry 1: layer null is not a whole number"]),
    "listed index missing": (b'[{"layer": 0, "site": "mlp"}]', ["entry 1: index null is not a whole number"]),
    "listed site missing": (b'[{"layer": 0, "index": 1}]', ['entry 1: {"layer": 0, "index": 1} is not a '
                                                             "[layer, site, index] neuron"]),
    "listed site a number": (b'[[0, 5, 1]]', ["entry 1: [0, 5, 1] is not a [layer, site, index] neuron"]),
    "listed pair": (b'[[0, 1]]', ["entry 1: [0, 1] is not a [layer, site, index] neuron"]),
    "listed entry nested deep": (b"[" + deep(900) + b"]", ["entry 1: [[[[", "is not a [layer, site, index]"]),
    "top-level list of sets": (b'[{"name": "en", "neurons": {"mlp": {"0": [1]}}}]',
                               ["entry 1 is a neuron set, not a neuron", '{"sets": {NAME:', "not a list"]),
    "top-level string": (b'"en"', ["a neuron set is", "(not a string)"]),
    "top-level number": (b"3", ["a neuron set is", "(not a number)"]),
    "top-level null": (b"null", ["a neuron set is", "(not null)"]),
    "sets an array": (b'{"sets": [{"neurons": {}}]}', ['"sets" is an array', '{"sets": {NAME:']),
    "sets a string": (b'{"sets": "en"}', ['"sets" is a string']),
    "set not an object": (b'{"sets": {"en": 7}}', ["set 'en'", "a neuron set is", "(not a number)"]),
    "arrays nested 100000 deep": (deep(100_000), ["not valid JSON", "nested too deeply"]),
    "objects nested 100000 deep": (deep(100_000, "1", '{"a":', "}"), ["not valid JSON", "nested too deeply"]),
    "neurons nested 5000 deep": (b'{"neurons": ' + deep(5000) + b"}", ["nested too deeply"]),
    "empty file": (b"", ["empty file", '{"sets"']),
    "only whitespace": (b" \n\t\n", ["empty file"]),
    "invalid utf-8": (b'{"neurons": {"ml\xffp": {"0": [1]}}}', ["line 1", "not UTF-8", "byte 0xff"]),
    "invalid utf-8 on line 3": (b'{\n"neurons":\n{"\xe9": {}}}', ["line 3", "not UTF-8"]),
    "utf-16": ('{"neurons": {}}'.encode("utf-16"), ["UTF-16", "save it with UTF-8"]),
    "binary": (b"\x00\x01\x02PK", ["binary data"]),
    "trailing comma": (b'{"neurons": {"mlp": {"0": [1,]}}}', ["line 1, column", "a value is missing"]),
    "both sets and neurons": (b'{"sets": {"en": {"neurons": {}}}, "neurons": {"mlp": {"0": [1]}}}',
                              ['both "sets" and "neurons"']),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_set_file_gives_one_clear_error(case):
    content, fragments = BAD[case]
    with pytest.raises(NeuronSetError) as info:
        read_neuron_sets(content, "my-sets.json")
    assert_clear(info.value, "my-sets.json", *fragments)


@pytest.mark.parametrize("case", ["name a number", "index Infinity", "arrays nested 100000 deep", "empty file",
                                  "invalid utf-8", "top-level list of sets", "layer of 5000 digits"])
def test_the_same_file_as_a_ref_gives_the_same_error(case, tmp_path):
    content, fragments = BAD[case]
    (tmp_path / "my-sets.json").write_bytes(content)
    with pytest.raises(NeuronSetError) as info:
        load_neuron_set(tmp_path / "my-sets.json")
    assert_clear(info.value, "my-sets.json", *fragments)


def test_a_valid_name_and_indices_still_read():
    found = read_neuron_sets(one({"mlp": {"0": [0, 2147483647], "007": [3]}}, name="en"), "f.json")
    assert found == {"en": NeuronSet([(0, "mlp", 0), (0, "mlp", 2**31 - 1), (7, "mlp", 3)])}
    assert found["en"].name == "en"
    assert list(read_neuron_sets(one({}, name=""), "plain.json")) == ["plain"]  # an empty name: the file's


# ---- REFs on the command line ------------------------------------------------------------------
@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the verb gets as far as loading a model."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for a bad neuron set")
    monkeypatch.setattr(neuronlab.cli.explore, "load_lm", refuse)
    monkeypatch.setattr(neuronlab.cli.evaluate, "load_lm", refuse)


@pytest.fixture
def scan_dir(tmp_path):
    """DIR/neurons.json as a scan writes it, sets en and ss."""
    sets = {"en": {"neurons": {"mlp": {"0": [1]}}}, "ss": {"neurons": {"mlp": {"1": [2]}}}}
    (tmp_path / "neurons.json").write_text(json.dumps({"sets": sets}))
    (tmp_path / "one.json").write_text(json.dumps({"name": "x", "neurons": {"mlp": {"0": [1]}}}))
    (tmp_path / "bad-name.json").write_text(json.dumps({"name": 5, "neurons": {}}))
    (tmp_path / "deep.json").write_bytes(deep(50_000))
    (tmp_path / "list.json").write_text(json.dumps([{"neurons": {}}]))
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "latin1.json").write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    (tmp_path / "inf.json").write_bytes(b'{"neurons": {"mlp": {"0": [Infinity]}}}')
    (tmp_path / "folder.json").mkdir()
    return tmp_path


REFS = {  # REF (relative to the folder): fragments of the one line
    "neurons.json#fr": ["neurons.json: no neuron set named 'fr'", "available: en, ss"],
    "neurons.json#EN": ["no neuron set named 'EN'", "available: en, ss"],
    "neurons.json#en ": ["no neuron set named 'en '"],
    "neurons.json#../en": ["no neuron set named '../en'"],
    "neurons.json": ["holds several sets", "adding #KEY", "keys: en, ss"],
    "one.json#x": ["one.json: no neuron set named 'x'", "holds one set", "without #KEY"],
    "missing.json": ["neuron set file not found", "missing.json"],
    "missing.json#en": ["neuron set file not found", "missing.json"],
    "folder.json": ["neuron set file not found", "folder.json"],
    "bad-name.json": ['"name" 5 is not a string'],
    "deep.json": ["nested too deeply"],
    "list.json": ["entry 1 is a neuron set, not a neuron"],
    "empty.json": ["empty file"],
    "latin1.json": ["not UTF-8", "line 1"],
    "inf.json": ["index Infinity is not a whole number"],
}


@pytest.mark.parametrize("ref", REFS)
def test_a_bad_ref_exits_2_with_one_line_before_a_model_loads(ref, scan_dir, no_model, capsys):
    for verb, flag in (("chat", "--suppress"), ("chat", "--activate"), ("eval", "--suppress"), ("eval", "--mean")):
        tail = ["--prompt", "hi"] if verb == "chat" else ["--json"]
        code = main([verb, "--model", "tiny-llama", flag, str(scan_dir / ref), *tail])
        out, err = capsys.readouterr()
        assert code == 2 and not out, (out, err)
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert_clear(err.strip(), ref.partition("#")[0], *REFS[ref])


# ---- any JSON value ------------------------------------------------------------------------------
NUMBERS = (st.integers() | st.floats() | st.sampled_from([2**31, 2**63, -1, 10**30, math.inf, math.nan])
           | st.booleans() | st.none())
KEYS = st.sampled_from(["sets", "neurons", "name", "mlp", "attn_q", "0", "3", "-1", "1.5", "", "layer", "site",
                        "index", "9" * 30])
JSON = st.recursive(NUMBERS | st.text(max_size=6) | KEYS,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=4), inner,
                                                                                 max_size=4), max_leaves=20)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid(neurons: NeuronSet) -> bool:
    return isinstance(neurons, NeuronSet) and isinstance(neurons.name, str) and all(
        type(n.layer) is int and type(n.index) is int and 0 <= n.layer < 2**31 and 0 <= n.index < 2**31
        and isinstance(n.site, str) for n in neurons)


@FUZZ
@given(data=JSON | st.integers(1, 3000).map(lambda d: json.loads("[" * d + "]" * d) if d < 900 else d))
def test_any_json_value_gives_valid_sets_or_a_neuron_set_error(data):
    try:
        content = json.dumps(data).encode()
    except (RecursionError, ValueError):
        return
    try:
        found = read_neuron_sets(content, "fuzz.json")
    except NeuronSetError as e:
        assert str(e).count("fuzz.json") == 1 and "\n" not in str(e)
    else:
        assert found and all(isinstance(k, str) and valid(v) for k, v in found.items())
    try:
        assert valid(NeuronSet.from_json(data))
    except NeuronLabError as e:
        assert isinstance(e, NeuronSetError) and str(e)


@FUZZ
@given(site=st.sampled_from(SITES), layer=st.text(max_size=25) | st.integers(), index=NUMBERS | st.text(max_size=5))
def test_any_layer_and_index_give_a_neuron_or_say_which_is_wrong(site, layer, index):
    content = json.dumps({"neurons": {site: {str(layer): [index]}}}).encode()
    try:
        (found,) = read_neuron_sets(content, "fuzz.json").values()
    except NeuronSetError as e:
        assert "layer" in str(e) or "index" in str(e), str(e)
    else:
        (neuron,) = found
        assert neuron == (int(str(layer)), site, index) and type(index) is int


@pytest.mark.parametrize("item", [(0, "mlp", 3.9), (0, "mlp", 3.0), (1.5, "mlp", 2), (0, "mlp", "7"), (0, "mlp", None)])
def test_the_python_api_never_cuts_a_number_to_a_neuron(item):
    with pytest.raises(NeuronSetError, match="whole-number layer and index"):
        NeuronSet([item])


def test_the_python_api_takes_integers_of_any_kind():
    assert NeuronSet([(np.int64(1), "mlp", torch.tensor(4)), (2, "mlp", np.int32(5))]) == NeuronSet([(1, "mlp", 4),
                                                                                                        (2, "mlp", 5)])
