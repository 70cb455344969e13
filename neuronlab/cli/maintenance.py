"""Maintainers' verbs: ``ship`` (recompute the shipped results) and ``bench`` (intervened vs plain timings)."""
from __future__ import annotations

import json

from neuronlab.cli.args import load_lm, split_csv
from neuronlab.models.loading import load_model
from neuronlab.progress import text_bar


def cmd_ship(args) -> None:
    from neuronlab.ship import ship

    ship(split_csv(args.only) if args.only else None, args.out, load=lambda spec: load_model(spec, progress=text_bar()),
         progress=text_bar)


def cmd_bench(args) -> None:
    from neuronlab.bench import run_bench

    lm = load_lm(args, args.model)
    result = run_bench(lm, repeats=args.repeats, new_tokens=args.new_tokens, progress=text_bar())
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"forward_ratio {result['forward_ratio']:.3f}   generate_ratio {result['generate_ratio']:.3f}")
