"""Bad command-line flags: argparse's one-line error naming the flag, exit code 2, before any model loads;
Ctrl-C: one line and exit status 130."""
import pytest

import neuronlab.cli
from neuronlab.cli import main

# the smallest valid command line of each verb; a case adds one bad flag to it
BASE = {
    "chat": ["chat", "--prompt", "hi"],
    "scan": ["scan", "--out", "o"],
    "transfer": ["transfer", "--target", "t", "--out", "o.safetensors"],
    "eval": ["eval"],
    "train-donor": ["train-donor", "--out", "o.safetensors"],
    "train-chat": ["train-chat", "--out", "o.safetensors"],
    "finetune": ["finetune", "--neurons", "n.json", "--out", "o.safetensors"],
    "ship": ["ship"],
    "bench": ["bench"],
}

BAD = [  # verb, flag, value
    ("transfer", "--count", "-5"),
    ("transfer", "--count", "0"),
    ("transfer", "--count", "2.5"),
    ("transfer", "--fraction", "5"),
    ("transfer", "--fraction", "0"),
    ("transfer", "--fraction", "-0.1"),
    ("transfer", "--fraction", "nan"),
    ("transfer", "--limit", "0"),
    ("transfer", "--seed", "-1"),
    ("transfer", "--harmless-weight", "-1"),
    ("transfer", "--goal", "inf"),
    ("transfer", "--max-ppl-change", "-0.5"),
    ("transfer", "--max-false-refusal", "1.5"),
    ("transfer", "--max-fraction", "2"),
    ("transfer", "--start", "0"),
    ("transfer", "--random-seeds", "-1"),
    ("transfer", "--threshold", "0"),
    ("transfer", "--threshold", "1.01"),
    ("scan", "--batch-size", "-1"),
    ("scan", "--batch-size", "0"),
    ("scan", "--langs", ","),
    ("scan", "--langs", " , ,"),
    ("scan", "--top-p", "0"),
    ("scan", "--top-p", "2"),
    ("scan", "--probes", "0"),
    ("scan", "--layers", "1,x"),
    ("scan", "--layers", "-1"),
    ("scan", "--layers", ","),
    ("eval", "--limit", "-1"),
    ("eval", "--limit", "0"),
    ("eval", "--controls", "-3"),
    ("eval", "--mc-questions", "0"),
    ("eval", "--max-new-tokens", "0"),
    ("eval", "--batch-size", "x"),
    ("eval", "--langs", ""),
    ("eval", "--scale", "nan"),
    ("eval", "--scale", "two"),
    ("eval", "--threshold", "0"),
    ("chat", "--top-p", "0"),
    ("chat", "--top-p", "2"),
    ("chat", "--temperature", "0"),
    ("chat", "--temperature", "-1"),
    ("chat", "--max-new-tokens", "-5"),
    ("chat", "--seed", "-2"),
    ("chat", "--seed", "1e3"),
    ("chat", "--scale", "-inf"),
    ("chat", "--prompt", "bad \udcff byte"),
    ("finetune", "--steps", "-5"),
    ("finetune", "--steps", "0"),
    ("finetune", "--lr", "0"),
    ("finetune", "--lr", "-1e-3"),
    ("finetune", "--batch-size", "0"),
    ("finetune", "--langs", ","),
    ("finetune", "--validation", "-1"),
    ("finetune", "--max-false-refusal", "-0.1"),
    ("finetune", "--eval-every", "0"),
    ("finetune", "--limit", "-2"),
    ("finetune", "--own-tokens", "0"),
    ("finetune", "--harmless-repeat", "-1"),
    ("finetune", "--avoid-refusal", "-1"),
    ("finetune", "--own-target", "nonsense"),
    ("train-donor", "--top-p", "1.5"),
    ("train-donor", "--opening-weight", "-4"),
    ("train-donor", "--seed", "x"),
    ("train-chat", "--per-layer", "0"),
    ("train-chat", "--steps", "-1"),
    ("ship", "--only", ","),
    ("bench", "--repeats", "0"),
    ("bench", "--new-tokens", "-1"),
]


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if any verb gets as far as loading a model."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for a bad flag")
    for module in ("args", "explore", "evaluate", "train", "transfer", "maintenance"):
        target = getattr(neuronlab.cli, module)
        for name in ("load_lm", "load_model"):
            if hasattr(target, name):
                monkeypatch.setattr(target, name, refuse)


def test_the_table_is_large_and_covers_every_verb_with_numbers():
    assert len(BAD) >= 40
    assert {verb for verb, _, _ in BAD} == set(BASE)


@pytest.mark.parametrize("verb, flag, value", BAD, ids=[f"{v} {f} {x!r}" for v, f, x in BAD])
def test_bad_flag_exits_2_naming_it(verb, flag, value, no_model, capsys):
    with pytest.raises(SystemExit) as e:
        main([*BASE[verb], f"{flag}={value}"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert f"error: argument {flag}" in last, err
    assert "Traceback" not in err


@pytest.mark.parametrize("verb, flag, value", [("transfer", "--count", "-5"), ("scan", "--batch-size", "-1"),
                                                ("eval", "--limit", "-1"), ("chat", "--top-p", "2")])
def test_negative_numbers_are_values_not_options(verb, flag, value, no_model, capsys):
    """Written as two words (``--count -5``), the number is still the flag's value and is refused."""
    with pytest.raises(SystemExit) as e:
        main([*BASE[verb], flag, value])
    assert e.value.code == 2 and f"argument {flag}: expected" in capsys.readouterr().err


def test_valid_values_parse_as_before():
    args = neuronlab.cli.build_parser().parse_args(
        [*BASE["transfer"], "--count", "3", "--goal", "1.1", "--max-false-refusal", "1", "--harmless-weight", "0"])
    assert (args.count, args.goal, args.max_false_refusal, args.harmless_weight) == (3, 1.1, 1.0, 0.0)
    args = neuronlab.cli.build_parser().parse_args([*BASE["scan"], "--langs", "en, zh,", "--layers", "0,2"])
    assert (args.langs, args.layers, args.top_p, args.batch_size) == ("en, zh,", "0,2", 0.03, 8)
    args = neuronlab.cli.build_parser().parse_args([*BASE["eval"], "--controls", "0"])
    assert args.controls == 0 and args.langs == "en"


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(neuronlab.cli, "cmd_models", interrupted)
    assert main(["models"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted" and "Traceback" not in err
