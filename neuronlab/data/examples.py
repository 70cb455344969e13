"""The example files shown beside the app's uploaders (assets/examples, written by make_examples.py there)."""
from __future__ import annotations

from typing import NamedTuple

from neuronlab.data.bias import SCHEMA as BIAS_SCHEMA
from neuronlab.data.prompts import SCHEMA as PROMPT_SCHEMA
from neuronlab.neurons.patches import SCHEMA as PATCH_SCHEMA
from neuronlab.neurons.sets import SCHEMA as NEURON_SCHEMA
from neuronlab.paths import ASSETS

EXAMPLES_DIR = ASSETS / "examples"


class Example(NamedTuple):
    files: tuple[str, ...]  # names in EXAMPLES_DIR
    hint: str  # the file format in one line


EXAMPLES = {
    "prompts": Example(("prompts.jsonl", "prompts.csv"), PROMPT_SCHEMA),
    "bias": Example(("bias.jsonl", "bias.csv"), BIAS_SCHEMA),
    "neuron_sets": Example(("neuron_sets.json",), NEURON_SCHEMA),
    "patch": Example(("patch-demo-target.safetensors",),
                     f"{PATCH_SCHEMA}; the example moves 8 neurons from demo-donor into demo-target"),
}
