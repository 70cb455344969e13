"""The Tour as a new user meets it, timed in headless Chromium: the Start page, then each of the Tour's five steps
from its click to the end of its run, and the whole walk; each figure beside its goal (a step ≤ 10 s, the Tour
≤ 90 s on a 2-core CPU, the models' GGUF conversion excluded: run the test suite or load the demo pair once first).

It runs tests/test_browser.py::test_the_tour_from_a_cold_page (which also checks the story: a refusal turns into
an answer when the safety neurons are off) and refreshes the page screenshots in docs/screenshots.

Usage: python bench/tour.py [--json]   (needs /usr/bin/chromium and the playwright package)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"step": 10.0, "whole tour": 90.0}  # seconds


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "timings.json"
        env = {**os.environ, "NEURONLAB_TOUR_TIMINGS": str(out), "NEURONLAB_SCREENSHOTS": "docs/screenshots",
               "NEURONLAB_REQUIRE_BROWSER": "1"}
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "tests/test_browser.py"], cwd=ROOT, env=env)
        if not out.is_file():
            print("the Tour test did not finish; see its output above", file=sys.stderr)
            return 1
        timings = json.loads(out.read_text())
    rows = {name: {"seconds": round(t, 2), "goal": GOALS.get(name, GOALS["step"] if name.startswith("step") else None)}
            for name, t in timings.items()}
    for row in rows.values():
        row["ratio_to_goal"] = round(row["seconds"] / row["goal"], 3) if row["goal"] else None
    if "--json" in sys.argv:
        print(json.dumps({"cpus": os.cpu_count(), "timings": rows}, indent=1))
    else:
        for name, row in rows.items():
            goal = f"goal ≤ {row['goal']:.0f} s, ratio {row['ratio_to_goal']:.2f}" if row["goal"] else ""
            print(f"{name:<12}{row['seconds']:>7.1f} s   {goal}")
    met = all(r["ratio_to_goal"] is None or r["ratio_to_goal"] <= 1 for r in rows.values())
    return run.returncode or (0 if met else 2)


if __name__ == "__main__":
    raise SystemExit(main())
