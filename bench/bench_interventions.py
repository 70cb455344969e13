"""Intervened vs plain wall time on the same prompts, measured in one run.

    python bench/bench_interventions.py [--model demo-target]

Prints forward_ratio (a batch forward pass) and generate_ratio (greedy generation of the same number
of tokens) with a scan-sized suppression (3% of MLP neurons in every layer) on, and scan_ratio (an
activation scan vs plain forward passes over the same prompts). Goals on CPU:
forward_ratio <= 1.3, generate_ratio <= 1.05, scan_ratio <= 1.5.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from neuronlab import load_model
from neuronlab.bench import run_bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-target")
    parser.add_argument("--repeats", type=int, default=5, help="back-to-back pairs per figure")
    args = parser.parse_args()
    print(json.dumps(run_bench(load_model(args.model), repeats=args.repeats), indent=1))
