"""Typed neurons (the Intervene page's "Single neurons" box): checked against the model's shape and a size cap
before anything is expanded; valid text gives the set a brute-force expansion gives; any text gives a set or a
NeuronSetError, nothing else."""
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuronlab.neurons.sets import MAX_TYPED_NEURONS, NeuronSet, NeuronSetError, parse_neurons

LAYERS, SIZES = 4, {"mlp": 128, "attn_q": 64, "attn_k": 32, "attn_v": 32, "attn_o": 64}  # tiny-llama


def fastest(fn, tries: int = 3) -> float:
    """The fastest of a few runs, in seconds (a busy machine slows some runs, never all)."""
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("text, match", [
    ("0-3 mlp 0-3000000", r"index out of range in '0-3000000' \(128 neurons per layer: 0-127\)"),
    ("0-3000000 mlp 0", r"layer out of range in '0-3000000' \(the model has 4 layers: 0-3\)"),
    ("0-3 mlp 0-99999999999999999999999999999999999999", "index out of range"),
    ("0 mlp 1\n" * 24_000 + "0-3 mlp 0-3000000", "index out of range"),
    ("0-3 mlp *;" * 5000, "more than 1,000,000"),
    ("0 mlp 1," * 30_000, "characters long"),
])
def test_a_huge_range_answers_at_once(tiny, text, match):
    def parse():
        with pytest.raises(NeuronSetError, match=match):
            parse_neurons(text, tiny.arch)
    if len(text) < 100_000:
        assert fastest(parse) < 0.1
    else:  # a long text is read once, still in well under a second
        assert fastest(parse) < 1.0


def test_without_a_model_the_size_cap_still_holds():
    assert fastest(lambda: pytest.raises(NeuronSetError, parse_neurons, "0-3000000 mlp 0-3000000")) < 0.1
    assert parse_neurons("0-1 mlp 5-6") == NeuronSet([(0, "mlp", 5), (0, "mlp", 6), (1, "mlp", 5), (1, "mlp", 6)])
    with pytest.raises(NeuronSetError, match="needs the model's shape"):
        parse_neurons("0 mlp *")
    with pytest.raises(NeuronSetError, match="SITE one of"):
        parse_neurons("0 ffn 1")


@pytest.mark.parametrize("bad, match", [
    ("3 mlp 3.9", "'3.9' is not an index"), ("3 mlp Infinity", "'Infinity' is not an index"),
    ("3 mlp -1", "'-1' is not an index"), ("-1 mlp 0", "'-1' is not a layer"), ("3 mlp 1e3", "not an index"),
    ("3 mlp NaN", "not an index"), ("3 mlp +4", "not an index"), ("3 mlp 7-5", "'7-5' runs backwards; write 5-7"),
    ("3 mlp 1 2", "separated by a space"), ("1.5 mlp 0", "'1.5' is not a layer"), ("3 mlp ٣", "not an index"),
])
def test_bad_numbers_get_one_line(tiny, bad, match):
    with pytest.raises(NeuronSetError, match=match) as error:
        parse_neurons(bad, tiny.arch)
    assert "\n" not in str(error.value) and len(str(error.value)) < 300


# ---- property tests --------------------------------------------------------------------------------------
def spans(bound: int):
    """A comma list of numbers and ranges below ``bound`` (or *), as (text, the numbers it names)."""
    number = st.integers(0, bound - 1).map(lambda n: (str(n), {n}))
    span = st.tuples(st.integers(0, bound - 1), st.integers(0, bound - 1)).map(
        lambda ab: (f"{min(ab)}-{max(ab)}", set(range(min(ab), max(ab) + 1))))
    star = st.just(("*", set(range(bound))))
    return st.lists(st.one_of(number, span, star), min_size=1, max_size=4).flatmap(
        lambda parts: st.sampled_from([",", ", ", " , "]).map(
            lambda sep: (sep.join(p for p, _ in parts), set().union(*(s for _, s in parts)))))


@st.composite
def typed_entries(draw):
    entries = []
    for _ in range(draw(st.integers(0, 4))):
        site = draw(st.sampled_from(sorted(SIZES)))
        layers_text, layers = draw(spans(LAYERS).filter(lambda t: " " not in t[0]))
        index_text, indices = draw(spans(SIZES[site]))
        entries.append((f"{layers_text} {site} {index_text}", {(la, site, i) for la in layers for i in indices}))
    sep = draw(st.sampled_from([";", "\n", "; ", " ;\n"]))
    return sep.join(t for t, _ in entries), NeuronSet(set().union(*(n for _, n in entries)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed_entries())
def test_valid_text_gives_the_brute_force_expansion(tiny, case):
    assert tiny.arch.n_layers == LAYERS and {s: site.size for s, site in tiny.arch.sites.items()} == SIZES
    text, expected = case
    assert parse_neurons(text, tiny.arch) == expected
    if "*" not in text:
        assert parse_neurons(text) == expected  # without a model: the same set


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(), st.text(alphabet="0123456789-,*; \n\t.eE+mlpatn_qkvo").map(lambda t: t[:200])))
def test_any_text_gives_a_set_or_a_neuron_set_error(tiny, text):
    for arch in (tiny.arch, None):
        try:
            result = parse_neurons(text, arch)
        except NeuronSetError as e:
            assert "\n" not in str(e)
        else:
            assert isinstance(result, NeuronSet) and len(result) <= MAX_TYPED_NEURONS
