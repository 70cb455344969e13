"""Bias removal by neuron transfer (CNT's third application, issue #18) on one model, measured in one run.

    OMP_NUM_THREADS=1 python bench/bias_transfer.py [--model demo-target] [--neurons grad:0.01] [--steps 60]

1. Trains a bias donor: ``--neurons`` of the model (``all`` MLP neurons, ``grad:F`` the top fraction F by the
   gradient of the squared preference on the training items, ``random:F`` a random fraction F per layer)
   trained with ``training.debias.train_debiased`` on the scan split of ``--train-langs``.
2. Measures target and donor on the held-out split of ``--eval-langs``: stereotype score, LM score (with
   standard errors) and perplexity on the bundled English benign paragraphs.
3. Ranks the MLP neurons by weight difference donor vs target, copies the top k donor→target for each k of
   ``--ks`` (and random neurons with the same per-layer counts, ``random_like``) and measures the target.

``--goal stereotype`` builds the pair the other way round: the trained model is a *more biased target*
(``DebiasConfig(goal="stereotype", margin=--margin)``) and the untrained model is the donor, so that step 3
measures bias **deletion** by transfer (the biased model's score moving back toward 50%). Copying back every
trained neuron undoes the training by construction; the curve says how much of it the top of the ranking does.

``--donor NAME`` skips step 1 and measures a donor that exists (e.g. the built-in ``bias-donor``, made by
``make-bias-donor``) against ``--model``:

    OMP_NUM_THREADS=1 python bench/bias_transfer.py --donor bias-donor --ks 29,58,115 --eval-langs en,fr,es

Prints one line per condition and, with ``--json PATH``, writes every figure. The goal (issue #18): k ≤ 1%
of the MLP neurons moves the stereotype score ≥ 10 points toward 50% with the LM score within 2 points and
perplexity within 2%, random neurons < 3 points.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch  # noqa: E402

from neuronlab import NeuronSet, load_model  # noqa: E402
from neuronlab.data.bias import bundled_bias  # noqa: E402
from neuronlab.evaluation.bias import bias_scores  # noqa: E402
from neuronlab.evaluation.metrics import benign_texts, perplexity  # noqa: E402
from neuronlab.neurons.patches import apply_patch, patched  # noqa: E402
from neuronlab.neurons.sets import random_like, random_per_layer  # noqa: E402
from neuronlab.training.debias import GOALS, DebiasConfig, gradient_scores, train_debiased  # noqa: E402
from neuronlab.transfer.ranking import transfer_patch, weight_diff_scores  # noqa: E402


def trained_neurons(lm, spec: str, items, config: DebiasConfig) -> NeuronSet:
    """The neurons to train; ``random:F`` draws with seed ``config.seed + 1``, so that the ``random_like``
    control (seed ``config.seed``) is not the trained set itself."""
    size = lm.arch.sites["mlp"].size
    if spec == "all":
        return NeuronSet((layer, "mlp", i) for layer in range(lm.arch.n_layers) for i in range(size))
    kind, _, fraction = spec.partition(":")
    if kind == "grad":
        return gradient_scores(lm, items, config=config).top(fraction=float(fraction))
    if kind == "random":
        return random_per_layer(lm.arch, max(1, round(float(fraction) * size)), seed=config.seed + 1)
    raise SystemExit(f"--neurons: all, grad:FRACTION or random:FRACTION, not {spec!r}")


def measure(lm, items, texts) -> dict:
    summary = bias_scores(lm, items, batch_size=16)
    langs = {lang: {k: block[k] for k in ("stereotype_score", "stereotype_stderr", "lm_score", "preference")}
             for lang, block in summary["languages"].items()}
    overall = {k: summary["overall"][k] for k in ("stereotype_score", "stereotype_stderr", "lm_score", "lm_stderr",
                                                  "preference")}
    return {"languages": langs, "overall": overall, "perplexity": perplexity(lm, texts)}


def line(name: str, m: dict, base: dict | None) -> str:
    en, o = m["languages"].get("en", m["overall"]), m["overall"]
    text = (f"{name:<22} ss en {en['stereotype_score']:6.1%} ± {en['stereotype_stderr']:.1%}  "
            f"ss all {o['stereotype_score']:6.1%} ± {o['stereotype_stderr']:.1%}  lm all {o['lm_score']:6.1%}  "
            f"ppl {m['perplexity']:7.3f}")
    if base:
        toward = abs(base["overall"]["stereotype_score"] - 0.5) - abs(o["stereotype_score"] - 0.5)
        toward_en = abs(base["languages"]["en"]["stereotype_score"] - 0.5) - abs(en["stereotype_score"] - 0.5)
        text += (f"  | toward 50%: en {toward_en * 100:+5.1f} pts, all {toward * 100:+5.1f} pts; "
                 f"lm {(o['lm_score'] - base['overall']['lm_score']) * 100:+5.1f} pts; "
                 f"ppl {(m['perplexity'] / base['perplexity'] - 1):+6.2%}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-target")
    parser.add_argument("--neurons", default="grad:0.01", help="all | grad:FRACTION | random:FRACTION (trained)")
    parser.add_argument("--train-langs", default="en,fr,es")
    parser.add_argument("--eval-langs", default="en,fr,es")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--keep-weight", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--goal", choices=GOALS, default="neutral",
                        help="neutral: train a donor that prefers neither fill; stereotype: train a more biased target")
    parser.add_argument("--margin", type=float, default=0.5, help="--goal stereotype: the hinge's margin (nats/token)")
    parser.add_argument("--ks", default="46,115,230,461", help="numbers of neurons to transfer")
    parser.add_argument("--donor", help="measure this donor (a model spec) instead of training one")
    parser.add_argument("--save", help="write the donor patch here (.safetensors)")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()

    heldout = list(bundled_bias(args.eval_langs.split(","), "heldout"))
    texts = benign_texts("en")
    if args.donor:
        made(load_model(args.model), load_model(args.donor), heldout, texts, args)
        return
    target, donor = load_model(args.model), load_model(args.model)
    train = list(bundled_bias(args.train_langs.split(","), "scan"))
    config = DebiasConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                          keep_weight=args.keep_weight, goal=args.goal, margin=args.margin)
    started = time.time()
    neurons = trained_neurons(target, args.neurons, train, config)
    chose = time.time() - started
    patch = train_debiased(donor, train, neurons, config, neurons_spec=args.neurons,
                           progress=lambda f, m: print(f"  {m}", file=sys.stderr) if round(f * config.steps) % 10 == 0
                           else None)
    trained = time.time() - started - chose
    trained_name = "donor" if args.goal == "neutral" else "biased target"
    print(f"{trained_name}: {len(neurons)} neurons ({args.neurons}, chosen in {chose:.0f}s), {config.steps} steps, lr {config.lr}, "
          f"keep {config.keep_weight}, {len(train)} scan items ({args.train_langs}), trained in {trained:.0f}s")
    if args.save:
        patch.save(args.save)
    apply_patch(donor, patch)
    results = {"config": {**vars(args), "trained_neurons": len(neurons), "train_seconds": trained}, "rows": {}}
    base = measure(target, heldout, texts)
    results["rows"]["target" if args.goal == "neutral" else "untrained"] = base
    print(line("target" if args.goal == "neutral" else f"{args.model} (donor)", base, None), flush=True)
    results["rows"][trained_name] = m = measure(donor, heldout, texts)
    print(line(trained_name, m, base), flush=True)
    seen = [it for it in train if it.lang == train[0].lang]  # did the fit take on the training items themselves?
    fit = {name: bias_scores(lm, seen, batch_size=16)["overall"]["stereotype_score"]
           for name, lm in (("untrained", target), ("trained", donor))}
    results["training_items"] = fit
    print(f"on the {len(seen)} {seen[0].lang} training items: stereotype score {fit['untrained']:.1%} untrained, "
          f"{fit['trained']:.1%} trained", flush=True)
    if args.goal == "stereotype":  # the other way round: transfer untrained → biased, measured against the biased
        target, donor, base = donor, target, m
    curve(donor, target, heldout, texts, base, results, args)


def curve(donor, target, heldout, texts, base: dict, results: dict, args) -> None:
    """Step 3 (module doc): the top k by weight difference and random neurons like them, moved donor → target."""
    diff = weight_diff_scores(donor, target)
    mlp = target.arch.n_layers * target.arch.sites["mlp"].size
    for k in (int(k) for k in args.ks.split(",")):
        top = diff.top(count=k)
        for name, chosen in ((f"top {k} ({k / mlp:.2%})", top), (f"random {k}", random_like(top, target.arch, args.seed))):
            with patched(target, transfer_patch(donor, target, chosen)):
                results["rows"][name] = m = measure(target, heldout, texts)
            print(line(name, m, base), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def made(target, donor, heldout, texts, args) -> None:
    """``--donor``: measure target and an existing donor, then the transfer curve."""
    results = {"config": vars(args), "rows": {}}
    results["rows"]["target"] = base = measure(target, heldout, texts)
    print(line("target", base, None), flush=True)
    results["rows"]["donor"] = m = measure(donor, heldout, texts)
    print(line("donor", m, base), flush=True)
    curve(donor, target, heldout, texts, base, results, args)


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
