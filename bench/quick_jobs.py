"""Time every job of the quick preset through the app (streamlit AppTest) on the built-in demo pair.

    python bench/quick_jobs.py [--preset quick] [--target demo-target] [--donor demo-donor] [--threads N]

Per page and job it prints the page's estimate (shown before the job), the time the page reports after it
and the wall time of the click, as JSON lines. Scans run on an empty scan cache (a temporary folder), so a
repeat is never a cache hit. The jobs: a scan (Safety neurons), a transfer with its before/after evaluation
and the transfer curve (Transfer), and an evaluation of the patched target with one random control
(Evaluate, after applying the transfer's patch).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import neuronlab.analysis.scan  # noqa: E402

TIMEOUT = 900


def run(target) -> AppTest:
    """Rerun the app (``target``: the AppTest or a widget just changed); fail on a shown exception."""
    at = target.run(timeout=TIMEOUT)
    assert not at.exception, [e.message for e in at.exception]
    return at


def captions(at: AppTest, start: str) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith(start)]


def timed(at: AppTest, page: str, job: str, button: str, index: int = 0) -> dict:
    """Click ``button`` and time the rerun; the estimate the page showed before and the time it reports
    after (the ``index``-th of the page's estimates and reports: the Transfer page has two jobs)."""
    estimate = captions(at, "Takes ")[index]
    start = time.perf_counter()
    run(at.button(key=button).click())
    row = {"page": page, "job": job, "estimate": estimate, "reported": captions(at, "Finished in ")[index],
           "wall_s": round(time.perf_counter() - start, 1), "torch_threads": torch.get_num_threads()}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--target", default="demo-target")
    parser.add_argument("--donor", default="demo-donor")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scans = tempfile.mkdtemp(prefix="neuronlab-bench-")
    neuronlab.analysis.scan.cache_root = lambda: Path(scans)  # scans are never cache hits

    at = run(AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT))
    at.selectbox(key="target_pick").select(args.target)
    at.selectbox(key="donor_pick").select(args.donor)
    run(at.button(key="load_models").click())

    def page(name: str, preset_key: str) -> None:
        run(at.switch_page(f"webui/pages/{name}.py"))
        if at.radio(key=preset_key).value != args.preset:
            run(at.radio(key=preset_key).set_value(args.preset))

    page("safety_neurons", "scan_preset")
    timed(at, "Safety neurons", "scan", "scan_run")
    page("transfer", "tf_preset")
    timed(at, "Transfer", "transfer with before/after", "tf_run")
    timed(at, "Transfer", "transfer curve", "tf_search", index=1)
    run(at.button(key="tf_apply").click())
    page("evaluate", "ev_preset")
    timed(at, "Evaluate", "plain + patched + random control", "ev_run")


if __name__ == "__main__":
    main()
