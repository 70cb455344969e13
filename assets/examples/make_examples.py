"""Write the example files shown beside the app's uploaders: `python assets/examples/make_examples.py`.

prompts.jsonl / prompts.csv: a few bundled prompts (en, es; both labels and splits). bias.jsonl / bias.csv: the
first bundled bias items (en, fr; both splits). neuron_sets.json: two
small sets for demo-target. patch-demo-target.safetensors: the 8 neurons demo-donor changed most, copied from
demo-donor into demo-target (weight-diff ranking; deterministic, no sampling).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from neuronlab import NeuronSet, load_model  # noqa: E402
from neuronlab.data.bias import BiasSet, bundled_bias  # noqa: E402
from neuronlab.data.prompts import bundled_prompts  # noqa: E402
from neuronlab.neurons.sets import neuron_sets_json  # noqa: E402
from neuronlab.transfer.ranking import transfer_patch, weight_diff_scores  # noqa: E402

HERE = Path(__file__).resolve().parent
PATCH_NEURONS = 8
BIAS_IDS = 3  # the first ids of the bundled bias set: every third is held out


def main() -> None:
    prompts = bundled_prompts(["en", "es"]).head(1)
    prompts.to_jsonl(HERE / "prompts.jsonl")
    prompts.to_csv(HERE / "prompts.csv")
    every = bundled_bias(["en", "fr"])
    bias = BiasSet(tuple(i for i in every if i.id in every.ids[:BIAS_IDS]))
    bias.to_jsonl(HERE / "bias.jsonl")
    bias.to_csv(HERE / "bias.csv")
    target, donor = load_model("demo-target"), load_model("demo-donor")
    changed = weight_diff_scores(donor, target).top(count=PATCH_NEURONS).renamed("donor-changed-8")
    few = NeuronSet.from_indices(20, "mlp", [5, 17, 300], name="layer-20-three")
    sets = {changed.name: changed, few.name: few}
    (HERE / "neuron_sets.json").write_text(neuron_sets_json(sets) + "\n")
    transfer_patch(donor, target, changed).save(HERE / "patch-demo-target.safetensors")


if __name__ == "__main__":
    main()
