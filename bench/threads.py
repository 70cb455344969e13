"""Torch threads on a busy machine: the same batched forward pass and short greedy reply, timed with torch's
default thread count and with NeuronLab's (``neuronlab.threads``), on an idle CPU and beside one busy process
(a spin loop, standing in for a browser or another job).

    python bench/threads.py [--model demo-target] [--repeats 3]

Prints JSON: the seconds of each (load, threads) cell (best of the repeats) and the ratios, all from this run.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from neuronlab import load_model  # noqa: E402
from neuronlab.presets import measure_costs  # noqa: E402
from neuronlab.threads import default_threads  # noqa: E402


def spin(stop) -> None:
    while not stop.is_set():
        pass


def best_time(lm, threads: int, repeats: int) -> float:
    torch.set_num_threads(threads)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        measure_costs(lm)  # a warm-up and a timed forward of 4 prompts, then 8 greedy tokens each
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-target")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    lm = load_model(args.model)
    counts = {"torch default": torch.get_num_threads(), "neuronlab": default_threads()}
    out = {"model": args.model, "cpus": multiprocessing.cpu_count(), "threads": counts, "seconds": {}}
    for load in ("idle", "one busy process"):
        stop = multiprocessing.Event()
        busy = multiprocessing.Process(target=spin, args=(stop,)) if load != "idle" else None
        if busy:
            busy.start()
        try:
            out["seconds"][load] = {name: round(best_time(lm, n, args.repeats), 3) for name, n in counts.items()}
        finally:
            if busy:
                stop.set()
                busy.join()
    out["ratio torch default / neuronlab"] = {
        load: round(cell["torch default"] / cell["neuronlab"], 2) for load, cell in out["seconds"].items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
