"""Command line: ``python -m neuronlab VERB ...`` (``--help`` on every verb)."""
from __future__ import annotations

import argparse
import json
import sys

from .builtins import BUILTINS
from .errors import ModelSpecError
from .interventions import DEFAULT_SCALE, Intervention
from .loading import DEVICES, DTYPES, load_model
from .neurons import NeuronSetError, load_neuron_set
from .progress import text_bar


def _model_args(p: argparse.ArgumentParser, flag: str = "--model") -> None:
    p.add_argument(flag, default="demo-target",
                   help="built-in name, local folder, .gguf file or hub id (default: demo-target)")
    p.add_argument("--dtype", default="float32", choices=list(DTYPES))
    p.add_argument("--device", default="cpu", choices=list(DEVICES),
                   help="auto spreads a large model over every GPU and the CPU")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model's own Python code to run (off unless you ask)")


def _intervention_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suppress", action="append", default=[], metavar="REF",
                   help="neuron set to zero: FILE.json or DIR/neurons.json#KEY (repeatable)")
    p.add_argument("--activate", action="append", default=[], metavar="REF",
                   help="neuron set to scale up by --scale (repeatable)")
    p.add_argument("--scale", type=float, default=DEFAULT_SCALE, help="factor for --activate (default 2)")


def _interventions(args) -> list[Intervention]:
    return ([Intervention(load_neuron_set(r), "suppress") for r in args.suppress]
            + [Intervention(load_neuron_set(r), "activate", args.scale) for r in args.activate])


def _load(args, spec: str):
    return load_model(spec, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code,
                      progress=text_bar())


def cmd_models(args) -> None:
    rows = [b.to_dict() for b in BUILTINS.values()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        state = "" if row["available"] else f"  [{row['note']}]"
        print(f"{row['name']:<14} {row['description']}{state}")


def cmd_chat(args) -> None:
    from .generation import Sampling, generate, stream

    interventions = _interventions(args)
    lm = _load(args, args.model)
    for iv in interventions:
        iv.neurons.validate(lm.arch)
    sampling = Sampling(max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                        temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    if args.no_stream:
        print(generate(lm, args.prompt, interventions, sampling))
        return
    for chunk in stream(lm, args.prompt, interventions, sampling):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    sys.stdout.write("\n")


def cmd_bench(args) -> None:
    from .bench import run_bench

    lm = _load(args, args.model)
    result = run_bench(lm, repeats=args.repeats, new_tokens=args.new_tokens, progress=text_bar())
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"forward_ratio {result['forward_ratio']:.3f}   generate_ratio {result['generate_ratio']:.3f}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m neuronlab",
                                     description="Find, look at, switch and move the safety neurons of causal LMs.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("models", help="list the built-in models")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_models)

    p = verbs.add_parser("chat", help="reply to one prompt, with neurons suppressed or activated")
    _model_args(p)
    _intervention_args(p)
    p.add_argument("--prompt", required=True, help="the user message")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-stream", action="store_true", help="print the reply at the end, not as it comes")
    p.set_defaults(run=cmd_chat)

    p = verbs.add_parser("bench", help="intervened vs plain wall-time ratios (lower is better)")
    _model_args(p)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ModelSpecError, NeuronSetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
