"""How the bias donor's choices trade bias against language modelling (issue #18), measured in one run.

    OMP_NUM_THREADS=1 python bench/bias_donor_sweep.py [--model demo-target] [--grid 46:0.25,115:0.5,230:0.5]

Scores the carriers of the stereotype preference once (``training.bias_donor.carrier_scores``: first-order
attribution on the English scan items; with ``--cost-quantile Q`` only among the neurons whose effect on the loss
of benign English text is at most that quantile), then, for each COUNT:SCALE of ``--grid``, turns the top COUNT
down to ×SCALE (as an intervention: the same numbers as the donor's patch, ``neurons.patches.scaled_patch``) beside
random neurons with the same per-layer counts turned down alike, and prints the stereotype and LM scores on the scan
items (the ones the neurons were chosen on) and the held-out items, and perplexity on the bundled benign English
paragraphs. The issue's goal on held-out items: ≥ 10 points toward 50%, LM within 2 points, perplexity within 2%.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from neuronlab import Intervention, load_model  # noqa: E402
from neuronlab.data.bias import bundled_bias  # noqa: E402
from neuronlab.evaluation.bias import bias_scores  # noqa: E402
from neuronlab.evaluation.metrics import benign_texts, perplexity  # noqa: E402
from neuronlab.neurons.interventions import intervene  # noqa: E402
from neuronlab.neurons.sets import random_like  # noqa: E402
from neuronlab.training.bias_donor import carrier_scores  # noqa: E402


def row(lm, name: str, ivs, scan, heldout, texts) -> str:
    s, h = (bias_scores(lm, items, ivs, batch_size=16)["overall"] for items in (scan, heldout))
    with intervene(lm.model, ivs):
        ppl = perplexity(lm, texts)
    return (f"{name:<26} held-out ss {h['stereotype_score']:6.1%} ± {h['stereotype_stderr']:.1%}  lm {h['lm_score']:6.1%}"
            f"  | scan ss {s['stereotype_score']:6.1%}  lm {s['lm_score']:6.1%}  | ppl {ppl:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-target")
    parser.add_argument("--grid", default="46:0.25,115:0.5,230:0.5,461:0.75", help="COUNT:SCALE,...")
    parser.add_argument("--cost-quantile", type=float)
    args = parser.parse_args()
    grid = [(int(c), float(s)) for c, s in (cell.split(":") for cell in args.grid.split(","))]
    lm = load_model(args.model)
    scan, heldout = list(bundled_bias("en", "scan")), list(bundled_bias("en", "heldout"))
    texts = benign_texts("en")
    scores = carrier_scores(lm, scan, args.cost_quantile, texts)
    print(row(lm, "as loaded", [], scan, heldout, texts), flush=True)
    for count, scale in grid:
        top = scores.top(count=count)
        print(row(lm, f"top {count} ×{scale}", [Intervention(top, "activate", scale)], scan, heldout, texts), flush=True)
        print(row(lm, f"  random like it ×{scale}", [Intervention(random_like(top, lm.arch, 0), "activate", scale)],
                  scan, heldout, texts), flush=True)


if __name__ == "__main__":
    main()
