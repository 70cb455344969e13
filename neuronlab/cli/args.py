"""Options and helpers shared by the verbs: model, intervention and training arguments, loading, lists, and the
argparse types that check every number and list flag (so bad input is argparse's one-line error, exit code 2,
before any model loads)."""
from __future__ import annotations

import argparse
import math
import sys

from neuronlab.models.loading import DEVICES, DTYPES, load_model
from neuronlab.neurons.interventions import DEFAULT_SCALE, Intervention
from neuronlab.neurons.sets import load_neuron_set
from neuronlab.progress import text_bar

# argparse types: each returns the parsed value or raises ArgumentTypeError, which argparse reports as
# "argument --FLAG: MESSAGE" and exit code 2. Lists stay the text given (verbs split it with split_csv).

def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _checked(parse, accept, expected: str):
    """An argparse type: ``parse`` the text, then refuse a value ``accept`` rejects, saying what is expected."""
    def check(text: str):
        value = parse(text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return check


positive_int = _checked(_int, lambda v: v >= 1, "an integer ≥ 1")  # counts, steps, limits, batch sizes, tokens
non_negative_int = _checked(_int, lambda v: v >= 0, "an integer ≥ 0")  # seeds; controls, where 0 turns them off
finite_float = _checked(_float, lambda v: True, "a finite number")  # any number but nan and inf
positive_float = _checked(_float, lambda v: v > 0, "a number > 0")  # learning rate, temperature
non_negative_float = _checked(_float, lambda v: v >= 0, "a number ≥ 0")  # weights where 0 turns a term off
fraction = _checked(_float, lambda v: 0 < v <= 1, "a fraction in (0, 1]")  # of candidates, of neurons per layer
probability = _checked(_float, lambda v: 0 < v <= 1, "a probability in (0, 1]")  # top-p, a refusal threshold
rate = _checked(_float, lambda v: 0 <= v <= 1, "a rate in [0, 1]")  # an allowed false-refusal rate
damping = _checked(_float, lambda v: 0 <= v < 1, "a factor in [0, 1)")  # a neuron's contribution turned down


def csv_list(text: str) -> str:
    """A comma-separated list with at least one item (kept as text)."""
    if not split_csv(text):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of at least one item, got {text!r}")
    return text


def int_list(text: str) -> str:
    """A comma-separated list of integers ≥ 0, at least one (kept as text)."""
    items = split_csv(text)
    if not items or not all(item.isdecimal() for item in items):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers ≥ 0 (e.g. 0,2,5), got {text!r}")
    return text


def label_pair(text: str) -> tuple[str, str]:
    """``a,b``: a function's two labels (argparse type)."""
    from neuronlab.data.prompts import PromptFileError, check_labels

    try:
        return check_labels(split_csv(text))
    except PromptFileError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def utf8_text(value: str) -> str:
    """Text that is valid UTF-8 (the shell passes undecodable bytes through as lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError("not valid UTF-8 text; pass the text in UTF-8") from None
    return value


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
    p.add_argument("--scale", type=finite_float, default=DEFAULT_SCALE, help="factor for --activate (default 2)")


def load_interventions(args) -> list[Intervention]:
    return ([Intervention(load_neuron_set(r), "suppress") for r in args.suppress]
            + [Intervention(load_neuron_set(r), "activate", args.scale) for r in args.activate])


def add_training_args(p: argparse.ArgumentParser, steps: int) -> None:
    """Options of every verb that trains neurons and writes a patch."""
    p.add_argument("--steps", type=positive_int, default=steps)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", required=True, help="patch file to write (.safetensors)")


def add_own_reply_args(p: argparse.ArgumentParser, own_tokens: int) -> None:
    """Options of the verbs that pair harmless prompts with the model's own replies."""
    p.add_argument("--harmless-repeat", type=non_negative_int, default=1, help="times each harmless example is seen per epoch")
    p.add_argument("--own-tokens", type=positive_int, default=own_tokens,
                   help=f"length of the model's own replies kept for harmless prompts (default {own_tokens})")
    p.add_argument("--own-target", default="reply", choices=("reply", "distribution"), metavar="reply|distribution",
                   help="learn those replies token by token ('reply', default) or, past their opening tokens, as "
                        "the untrained model's next-token distribution ('distribution': keeps perplexity)")
    p.add_argument("--avoid-refusal", type=non_negative_float, default=0.0, metavar="WEIGHT",
                   help="also train the harmless prompts, 4 a step, not to open with a refusal (unlikelihood of its "
                        "first tokens, this weight; default 0: off)")


def load_lm(args, spec: str):
    return load_model(spec, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code,
                      progress=text_bar())


def split_csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def load_patch(args, lm):
    """``--patch`` read and checked for ``lm``; with ``--force``, one made for another model (or for none) is
    applied anyway, with a warning."""
    from neuronlab.neurons.patches import Patch, check_patch, forced

    patch = Patch.load(args.patch)
    if not args.force:
        return check_patch(lm, patch)
    print(f"warning: --force: {args.patch} is applied to {lm.spec} whatever model it was made for", file=sys.stderr)
    return forced(lm, patch)
