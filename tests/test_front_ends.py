"""The app and the command line run the same experiment the same way: equal figures, replies and names for one
evaluation with random controls and for one transfer, on the tiny random model."""
import json

import torch

from neuronlab import Intervention, NeuronSet
from neuronlab.cli import main
from neuronlab.neurons.patches import Patch
from tests.support.apptest import app, page, quick_eval, run
from webui import state

SUPPRESSED = NeuronSet((1, "mlp", i) for i in range(8))
SEEDS = 2


def cli_json(capsys, *args: str) -> dict:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def comparable(result: dict) -> dict:
    """Per language: rates and counts per label, the replies in prompt order, and perplexity; plus utility."""
    langs = {lang: {**{label: (block[label]["n"], block[label]["refusal_rate"],
                               [(e["prompt"], e["reply"]) for e in block[label].get("examples", [])])
                       for label in ("harmful", "harmless")}, "perplexity": block["perplexity"]}
             for lang, block in result["languages"].items()}
    return {"languages": langs, "utility": {k: result["utility"][k] for k in ("perplexity", "mc_accuracy")}}


def without_examples(figures: dict) -> dict:
    """``comparable`` figures without the replies (the CLI keeps no replies for its controls)."""
    return {"languages": {lang: {k: v[:2] if isinstance(v, tuple) else v for k, v in block.items()}
                          for lang, block in figures["languages"].items()}, "utility": figures["utility"]}


def test_an_evaluation_with_controls_gives_the_same_figures_in_the_app_and_the_cli(tmp_path, capsys):
    at = app("tiny-llama")
    at.session_state[state.INTERVENTIONS] = {"target": [Intervention(SUPPRESSED, "suppress")]}
    page(at, "evaluate")
    quick_eval(at, "ev")
    run(at.number_input(key="ev_mc").set_value(4))
    run(at.number_input(key="ev_seeds").set_value(SEEDS))
    run(at.button(key="ev_run").click())
    shown = at.session_state["evaluation"]
    assert list(shown) == ["plain", "intervened", "intervened · control seed 0", "intervened · control seed 1"]

    SUPPRESSED.save(tmp_path / "set.json")
    cli = cli_json(capsys, "eval", "--model", "tiny-llama", "--suppress", str(tmp_path / "set.json"), "--langs", "en",
                   "--limit", "1", "--max-new-tokens", "8", "--mc-questions", "4", "--controls", str(SEEDS), "--json")
    assert comparable(shown["intervened"]) == comparable(cli)
    assert comparable(cli)["languages"]["en"]["harmful"][2]  # the replies themselves are compared
    assert without_examples(comparable(shown["plain"])) == without_examples(comparable(cli["baseline"]))
    for seed, control in enumerate(cli["controls"]["runs"]):
        assert without_examples(comparable(shown[f"intervened · control seed {seed}"])) == \
            without_examples(comparable(control))
    plain, off = comparable(shown["plain"]), comparable(shown["intervened"])
    assert plain["languages"]["en"]["perplexity"] != off["languages"]["en"]["perplexity"]  # the set does something


def test_a_transfer_makes_the_same_patch_in_the_app_and_the_cli(tmp_path, capsys):
    at = page(app("tiny-llama"), "transfer")
    run(at.selectbox(key="tf_ranking").select("random"))
    run(at.number_input(key="tf_seed").set_value(3))
    run(at.number_input(key="tf_count").set_value(20))
    run(at.toggle(key="tf_measure").set_value(False))
    run(at.button(key="tf_run").click())
    shown = at.session_state["transfer"]["patch"]

    out = tmp_path / "patch.safetensors"
    assert main(["transfer", "--donor", "tiny-llama", "--target", "tiny-llama", "--rank", "random",
                 "--seed", "3", "--count", "20", "--out", str(out)]) == 0
    written = Patch.load(out)
    assert written.neurons == shown.neurons and len(shown.neurons) == 20
    assert written.tensors.keys() == shown.tensors.keys()
    assert all(torch.equal(written.tensors[k], shown.tensors[k]) for k in shown.tensors)
    assert written.kind == shown.kind == "transfer"
