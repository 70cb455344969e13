"""Options and helpers shared by the verbs: model, intervention and training arguments, loading, lists."""
from __future__ import annotations

import argparse

from neuronlab.models.loading import DEVICES, DTYPES, load_model
from neuronlab.neurons.interventions import DEFAULT_SCALE, Intervention
from neuronlab.neurons.sets import load_neuron_set
from neuronlab.progress import text_bar


def add_model_args(p: argparse.ArgumentParser, flag: str = "--model") -> None:
    p.add_argument(flag, default="demo-target",
                   help="built-in name, local folder, .gguf file or hub id (default: demo-target)")
    p.add_argument("--dtype", default="float32", choices=list(DTYPES))
    p.add_argument("--device", default="cpu", choices=list(DEVICES),
                   help="auto spreads a large model over every GPU and the CPU")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model's own Python code to run (off unless you ask)")


def add_intervention_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suppress", action="append", default=[], metavar="REF",
                   help="neuron set to zero: FILE.json or DIR/neurons.json#KEY (repeatable)")
    p.add_argument("--activate", action="append", default=[], metavar="REF",
                   help="neuron set to scale up by --scale (repeatable)")
    p.add_argument("--scale", type=float, default=DEFAULT_SCALE, help="factor for --activate (default 2)")


def load_interventions(args) -> list[Intervention]:
    return ([Intervention(load_neuron_set(r), "suppress") for r in args.suppress]
            + [Intervention(load_neuron_set(r), "activate", args.scale) for r in args.activate])


def add_training_args(p: argparse.ArgumentParser, steps: int) -> None:
    """Options of every verb that trains neurons and writes a patch."""
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="patch file to write (.safetensors)")


def add_own_reply_args(p: argparse.ArgumentParser, own_tokens: int) -> None:
    """Options of the verbs that pair harmless prompts with the model's own replies."""
    p.add_argument("--harmless-repeat", type=int, default=1, help="times each harmless example is seen per epoch")
    p.add_argument("--own-tokens", type=int, default=own_tokens,
                   help=f"length of the model's own replies kept for harmless prompts (default {own_tokens})")
    p.add_argument("--own-target", default="reply", metavar="reply|distribution",
                   help="learn those replies token by token ('reply', default) or, past their opening tokens, as "
                        "the untrained model's next-token distribution ('distribution': keeps perplexity)")
    p.add_argument("--avoid-refusal", type=float, default=0.0, metavar="WEIGHT",
                   help="also train the harmless prompts, 4 a step, not to open with a refusal (unlikelihood of its "
                        "first tokens, this weight; default 0: off)")


def load_lm(args, spec: str):
    return load_model(spec, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code,
                      progress=text_bar())


def split_csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]
