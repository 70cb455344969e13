"""The ``transfer`` verb: copy ranked neurons from a donor into a target, and the ``--search`` curve, for a
function: refusal (harmful vs harmless prompts) or bias (bias removal, on the bundled bias items)."""
from __future__ import annotations

from pathlib import Path

from neuronlab.cli.args import load_lm
from neuronlab.files import check_output, write_atomic
from neuronlab.neurons.sets import load_neuron_set
from neuronlab.progress import text_bar

GOALS = {"refusal": 0.7, "bias": 0.55}  # --goal when none is given
COLUMNS = {"refusal": ["harmful", "harmless", "perplexity", "random_harmful", "random_harmless", "random_perplexity"],
           "bias": ["stereotype", "lm", "perplexity", "random_stereotype", "random_lm", "random_perplexity"]}


def cmd_transfer(args) -> None:
    from neuronlab.transfer.compatibility import require_compatible
    from neuronlab.transfer.plan import make_transfer, scan_data
    from neuronlab.transfer.ranking import rank_scores

    if args.count is not None and args.fraction is not None:
        raise ValueError("give --count or --fraction, not both")
    args.goal = GOALS[args.function] if args.goal is None else args.goal
    if args.function == "bias" and not 0 <= args.goal <= 1:
        raise ValueError(f"--goal {args.goal}: for bias, a stereotype score between 0 and 1 (0.55: within 5 points "
                         "of 50%)")
    check_output(args.out)
    if args.search:
        check_output(args.curve)
        check_output(Path(args.curve).with_suffix(".html"))
    scan, few = scan_data(args.function, args.lang, args.limit)  # causal and --search measure `few` many times
    donor, target = load_lm(args, args.donor), load_lm(args, args.target)
    require_compatible(donor, target)
    direction = "delete" if args.delete else "add"
    within = load_neuron_set(args.neurons).validate(donor.arch) if args.neurons else None
    prompts = few if args.rank == "causal" else scan
    if args.search:
        source, dest = (target, donor) if args.delete else (donor, target)
        sites = tuple(within.sites) if within else ("mlp",)
        scores = rank_scores(args.rank, donor, target, sites, args.seed, prompts, args.delete, args.lang,
                             args.harmless_weight, text_bar(), args.function)
        return _transfer_search(args, source, dest, scores, within, few)
    made = make_transfer(donor, target, args.rank, direction, within, count=args.count, fraction=args.fraction,
                         seed=args.seed, prompts=prompts, lang=args.lang, harmless_weight=args.harmless_weight,
                         check=False, progress=text_bar(), function=args.function)
    neurons, patch = made.neurons, made.patch
    path = patch.save(args.out)
    ranked = f"ranked by {args.rank}" + ("" if args.function == "refusal" else f" for {args.function}")
    print(f"{'deletion' if args.delete else 'addition'}: {len(neurons)} neurons from {patch.meta['source']} into "
          f"{patch.meta['target']} ({patch.meta['values']:,} weights, {patch.meta['share_of_parameters']:.4%} of "
          f"parameters), {ranked}")
    print("per layer:", ", ".join(f"{layer}:{n}" for layer, n in neurons.per_layer_counts().items()))
    print(f"wrote {path}")


def _search(args, source, dest, scores, within, few, direction):
    """The minimal-subset search of ``args.function`` on the scan data ``few``."""
    from neuronlab.evaluation.metrics import benign_texts
    from neuronlab.transfer.curve import bias_subset, minimal_subset

    if args.function == "bias":
        return bias_subset(source, dest, scores, list(few), benign_texts(args.lang), direction, args.goal,
                           args.max_ppl_change, args.max_lm_drop, args.max_fraction, args.start, args.random_seeds,
                           within, progress=text_bar())
    return minimal_subset(source, dest, scores, few.filter(label="harmful").texts, few.filter(label="harmless").texts,
                          benign_texts(args.lang), args.lang, direction, args.goal, args.max_ppl_change,
                          args.max_false_refusal, args.max_fraction, args.start, args.random_seeds, args.threshold,
                          within, progress=text_bar())


def _verify(args, dest, patches) -> dict:
    """``--verify``: the judged metric of ``args.function`` on the held-out split, under each of ``patches``
    ({name: patch}): judged refusal rates, or the stereotype and LM scores of the held-out bias items."""
    from neuronlab.data.bias import bundled_bias
    from neuronlab.data.prompts import bundled_prompts
    from neuronlab.evaluation.bias import bias_scores
    from neuronlab.evaluation.metrics import refusal_rates
    from neuronlab.neurons.patches import patched

    if args.function == "bias":
        items, where = bundled_bias(args.lang, split="heldout"), "held-out bias items"

        def judge():
            return bias_scores(dest, items)["overall"]

        def line(b: dict) -> str:
            return (f"stereotype score {b['stereotype_score']:.1%} ± {b['stereotype_stderr']:.1%}, "
                    f"LM score {b['lm_score']:.1%} ± {b['lm_stderr']:.1%}")
    else:
        prompts, where = bundled_prompts(args.lang, split="heldout"), "judged on held-out prompts"

        def judge():
            return refusal_rates(dest, prompts, [args.lang], progress=text_bar())[args.lang]

        def line(r: dict) -> str:
            return f"harmful {r['harmful']['refusal_rate']:.0%}, harmless {r['harmless']['refusal_rate']:.0%}"
    judged = {}
    for name, patch in patches.items():
        with patched(dest, patch):
            judged[name] = judge()
        print(f"{where}, {name}: {line(judged[name])}")
    return judged


def _transfer_search(args, source, dest, scores, within, few) -> None:
    """``transfer --search``: the minimal-subset curve (JSON + HTML figure) and the minimal patch."""
    from neuronlab.neurons.sets import random_like
    from neuronlab.plots import transfer_curve_figure
    from neuronlab.transfer.ranking import function_meta, transfer_patch

    direction = "delete" if args.delete else "add"
    result = _search(args, source, dest, scores, within, few, direction)
    result.meta["ranking"] = args.rank
    frame = result.to_frame()
    print(frame[["k", "share", *COLUMNS[args.function]]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    found = result.found
    if found and args.verify:
        result.meta["judged_heldout"] = _verify(args, dest, {
            name: transfer_patch(source, dest, neurons, check=False)
            for name, neurons in (("moved", result.minimal), ("random", random_like(result.minimal, dest.arch, 0)))})
    curve = result.save(args.curve)
    html = Path(curve).with_suffix(".html")
    figure = transfer_curve_figure(frame, args.goal, found.k if found else None)
    write_atomic(html, lambda tmp: figure.write_html(tmp, include_plotlyjs="cdn"))
    print(f"wrote {curve} and {html}")
    if found is None:
        raise ValueError(f"goal not met with up to {result.points[-1].k} neurons; no patch written "
                         "(raise --max-fraction, relax the budget, or try another --rank)")
    patch = transfer_patch(source, dest, result.minimal, check=False, direction=direction, ranking=args.rank,
                           search=f"minimal subset, goal {args.goal}", **function_meta(args.function))
    print(f"{direction}: {found.k} neurons ({found.share:.4%} of parameters) meet the goal; wrote {patch.save(args.out)}")
