"""The ``transfer`` verb: copy ranked neurons from a donor into a target, and the ``--search`` curve."""
from __future__ import annotations

from pathlib import Path

from neuronlab.cli.args import load_lm
from neuronlab.files import check_output, write_atomic
from neuronlab.neurons.sets import load_neuron_set
from neuronlab.progress import text_bar


def cmd_transfer(args) -> None:
    from neuronlab.data.prompts import bundled_prompts
    from neuronlab.transfer.compatibility import require_compatible
    from neuronlab.transfer.plan import make_transfer
    from neuronlab.transfer.ranking import rank_scores

    if args.count is not None and args.fraction is not None:
        raise ValueError("give --count or --fraction, not both")
    check_output(args.out)
    if args.search:
        check_output(args.curve)
        check_output(Path(args.curve).with_suffix(".html"))
    donor, target = load_lm(args, args.donor), load_lm(args, args.target)
    require_compatible(donor, target)
    direction = "delete" if args.delete else "add"
    within = load_neuron_set(args.neurons).validate(donor.arch) if args.neurons else None
    scan = bundled_prompts(args.lang, split="scan")
    few = scan.head(args.limit)  # the causal pass and the search measure every prompt many times
    prompts = few if args.rank == "causal" else scan
    if args.search:
        source, dest = (target, donor) if args.delete else (donor, target)
        sites = tuple(within.sites) if within else ("mlp",)
        scores = rank_scores(args.rank, donor, target, sites, args.seed, prompts, args.delete, args.lang,
                             args.harmless_weight, text_bar())
        return _transfer_search(args, source, dest, scores, within, few.filter(label="harmful").texts,
                                few.filter(label="harmless").texts)
    made = make_transfer(donor, target, args.rank, direction, within, count=args.count, fraction=args.fraction,
                         seed=args.seed, prompts=prompts, lang=args.lang, harmless_weight=args.harmless_weight,
                         check=False, progress=text_bar())
    neurons, patch = made.neurons, made.patch
    path = patch.save(args.out)
    print(f"{'deletion' if args.delete else 'addition'}: {len(neurons)} neurons from {patch.meta['source']} into "
          f"{patch.meta['target']} ({patch.meta['values']:,} weights, {patch.meta['share_of_parameters']:.4%} of "
          f"parameters), ranked by {args.rank}")
    print("per layer:", ", ".join(f"{layer}:{n}" for layer, n in neurons.per_layer_counts().items()))
    print(f"wrote {path}")


def _transfer_search(args, source, dest, scores, within, harmful, harmless) -> None:
    """``transfer --search``: the minimal-subset curve (JSON + HTML figure) and the minimal patch."""
    from neuronlab.data.prompts import bundled_prompts
    from neuronlab.evaluation.metrics import benign_texts, refusal_rates
    from neuronlab.neurons.patches import patched
    from neuronlab.neurons.sets import random_like
    from neuronlab.plots import transfer_curve_figure
    from neuronlab.transfer.curve import minimal_subset
    from neuronlab.transfer.ranking import transfer_patch

    direction = "delete" if args.delete else "add"
    result = minimal_subset(source, dest, scores, harmful, harmless, benign_texts(args.lang), args.lang, direction,
                            args.goal, args.max_ppl_change, args.max_false_refusal, args.max_fraction,
                            args.start, args.random_seeds, args.threshold, within, progress=text_bar())
    result.meta["ranking"] = args.rank
    frame = result.to_frame()
    print(frame[["k", "share", "harmful", "harmless", "perplexity", "random_harmful", "random_harmless",
                 "random_perplexity"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    found = result.found
    if found and args.verify:
        heldout = bundled_prompts(args.lang, split="heldout")
        judged = {}
        for name, neurons in (("moved", result.minimal), ("random", random_like(result.minimal, dest.arch, 0))):
            with patched(dest, transfer_patch(source, dest, neurons, check=False)):
                judged[name] = refusal_rates(dest, heldout, [args.lang], progress=text_bar())[args.lang]
            print(f"judged on held-out prompts, {name}: harmful {judged[name]['harmful']['refusal_rate']:.0%}, "
                  f"harmless {judged[name]['harmless']['refusal_rate']:.0%}")
        result.meta["judged_heldout"] = judged
    curve = result.save(args.curve)
    html = Path(curve).with_suffix(".html")
    figure = transfer_curve_figure(frame, args.goal, found.k if found else None)
    write_atomic(html, lambda tmp: figure.write_html(tmp, include_plotlyjs="cdn"))
    print(f"wrote {curve} and {html}")
    if found is None:
        raise ValueError(f"goal not met with up to {result.points[-1].k} neurons; no patch written "
                         "(raise --max-fraction, relax the budget, or try another --rank)")
    patch = transfer_patch(source, dest, result.minimal, check=False, direction=direction, ranking=args.rank,
                           search=f"minimal subset, goal {args.goal}")
    print(f"{direction}: {found.k} neurons ({found.share:.4%} of parameters) meet the goal; wrote {patch.save(args.out)}")
