"""Command line: ``python -m neuronlab VERB ...`` (``--help`` on every verb)."""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext

from neuronlab.models.builtins import BUILTINS
from neuronlab.errors import ModelSpecError
from neuronlab.neurons.interventions import DEFAULT_SCALE, Intervention
from neuronlab.models.loading import DEVICES, DTYPES, load_model
from neuronlab.neurons.sets import NeuronSetError, load_neuron_set
from neuronlab.progress import text_bar
from neuronlab.neurons.patches import PatchError
from neuronlab.data.prompts import PromptFileError


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


def _training_args(p: argparse.ArgumentParser, steps: int) -> None:
    """Options of every verb that trains neurons and writes a patch."""
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="patch file to write (.safetensors)")


def _own_reply_args(p: argparse.ArgumentParser, own_tokens: int) -> None:
    """Options of the verbs that pair harmless prompts with the model's own replies."""
    p.add_argument("--harmless-repeat", type=int, default=1, help="times each harmless example is seen per epoch")
    p.add_argument("--own-tokens", type=int, default=own_tokens,
                   help=f"length of the model's own replies kept for harmless prompts (default {own_tokens})")
    p.add_argument("--own-target", default="reply", metavar="reply|distribution",
                   help="learn those replies token by token ('reply', default) or, past their opening tokens, as "
                        "the untrained model's next-token distribution ('distribution': keeps perplexity)")
    p.add_argument("--avoid-refusal", type=float, default=0.0, metavar="WEIGHT",
                   help="also train the harmless prompts, 4 a step, not to open with a refusal (unlikelihood of its "
                        "first tokens, this weight; default 0: off)")


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
    from neuronlab.models.generation import Sampling, generate, stream
    from neuronlab.neurons.patches import Patch, apply_patch

    interventions = _interventions(args)
    patch = Patch.load(args.patch) if args.patch else None
    lm = _load(args, args.model)
    if patch is not None:
        apply_patch(lm, patch)
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


def cmd_transfer(args) -> None:
    from neuronlab.transfer.compatibility import require_compatible
    from neuronlab.data.prompts import bundled_prompts
    from neuronlab.transfer.ranking import rank_scores, top_neurons, transfer_patch

    if args.count is not None and args.fraction is not None:
        raise ValueError("give --count or --fraction, not both")
    donor, target = _load(args, args.donor), _load(args, args.target)
    require_compatible(donor, target)
    source, dest = (target, donor) if args.delete else (donor, target)
    within = load_neuron_set(args.neurons).validate(donor.arch) if args.neurons else None
    sites = tuple(within.sites) if within else ("mlp",)
    scan = bundled_prompts(args.lang, split="scan")
    few = scan.head(args.limit)  # the causal pass and the search measure every prompt many times
    scores = rank_scores(args.rank, donor, target, sites, args.seed, few if args.rank == "causal" else scan,
                         args.delete, args.lang, args.harmless_weight, text_bar())
    if args.search:
        return _transfer_search(args, source, dest, scores, within, few.filter(label="harmful").texts,
                                few.filter(label="harmless").texts)
    neurons = top_neurons(scores, count=args.count, fraction=args.fraction, within=within)
    patch = transfer_patch(source, dest, neurons, check=False, direction="delete" if args.delete else "add", ranking=args.rank)
    path = patch.save(args.out)
    print(f"{'deletion' if args.delete else 'addition'}: {len(neurons)} neurons from {source.spec} into "
          f"{dest.spec} ({patch.meta['values']:,} weights, {patch.meta['share_of_parameters']:.4%} of parameters), "
          f"ranked by {args.rank}")
    print("per layer:", ", ".join(f"{layer}:{n}" for layer, n in neurons.per_layer_counts().items()))
    print(f"wrote {path}")


def _transfer_search(args, source, dest, scores, within, harmful, harmless) -> None:
    """``transfer --search``: the minimal-subset curve (JSON + HTML figure) and the minimal patch."""
    from pathlib import Path

    from neuronlab.evaluation.metrics import benign_texts, refusal_rates
    from neuronlab.neurons.sets import random_like
    from neuronlab.neurons.patches import patched
    from neuronlab.plots import transfer_curve_figure
    from neuronlab.data.prompts import bundled_prompts
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
    transfer_curve_figure(frame, args.goal, found.k if found else None).write_html(html, include_plotlyjs="cdn")
    print(f"wrote {curve} and {html}")
    if found is None:
        raise ValueError(f"goal not met with up to {result.points[-1].k} neurons; no patch written "
                         "(raise --max-fraction, relax the budget, or try another --rank)")
    patch = transfer_patch(source, dest, result.minimal, check=False, direction=direction, ranking=args.rank,
                           search=f"minimal subset, goal {args.goal}")
    print(f"{direction}: {found.k} neurons ({found.share:.4%} of parameters) meet the goal; wrote {patch.save(args.out)}")


def _eval_effects(args, lm) -> tuple[list, str]:
    """The effects ``eval`` measures, and why random controls cannot be run for them ('' when they can)."""
    from neuronlab.transfer.compatibility import require_compatible
    from neuronlab.evaluation.effects import Effect, copy_from, fixed
    from neuronlab.training.expansion import RECIPE, retrainer
    from neuronlab.neurons.patches import Patch

    if args.remove_diff and not args.neurons:
        raise ValueError("--remove-diff needs --neurons REF (the neurons whose difference is removed)")
    effects, no_controls = [], ""
    if args.patch:
        patch = Patch.load(args.patch)
        source = patch.meta.get("source")
        if source and "target" in patch.meta:  # a transfer: controls copy random neurons from its source
            src = _load(args, source)
            if src.info.fingerprint != patch.meta.get("source_fingerprint"):
                raise ValueError(f"the patch's source model {source} has changed since the patch was made; "
                                 "run with --controls 0")
            other = copy_from(src)
        elif patch.meta.get("recipe") == RECIPE:  # SS-Neuron Expansion: controls train random masks
            other = retrainer(lm, patch.meta, progress=text_bar())
        else:
            other = fixed(patch)
            no_controls = f"{args.patch} was neither copied from a model nor trained by the finetune verb"

        def make(neurons):
            return patch if neurons == patch.neurons else other(neurons)
        effects.append(Effect("patch", patch.neurons, make_patch=make, label=f"patch {args.patch}"))
    if args.remove_diff:
        target = _load(args, args.remove_diff)
        require_compatible(lm, target)
        effects.append(Effect("patch", load_neuron_set(args.neurons), make_patch=copy_from(target),
                              label=f"remove-diff {args.remove_diff}"))
    effects += ([Effect("suppress", load_neuron_set(r), label=r) for r in args.suppress]
                + [Effect("activate", load_neuron_set(r), args.scale, label=r) for r in args.activate]
                + [Effect("mean", load_neuron_set(r), label=r) for r in args.mean])
    return effects, no_controls


def cmd_eval(args) -> None:
    from neuronlab.evaluation.effects import evaluate_effects
    from neuronlab.data.prompts import bundled_prompts, load_prompts
    from neuronlab.evaluation.replies import ReplyLog

    langs = _csv(args.langs)
    prompts = load_prompts(args.prompts, langs=langs) if args.prompts else bundled_prompts(langs)
    if args.split:
        prompts = prompts.filter(split=args.split)
    prompts = prompts.parallel_head(args.limit)
    lm = _load(args, args.model)
    effects, no_controls = _eval_effects(args, lm)
    controls = args.controls if args.controls is not None else (0 if no_controls or not effects else 3)
    if controls and no_controls:
        raise ValueError(f"no random controls: {no_controls}; run with --controls 0")
    if no_controls and args.controls is None:
        print(f"note: no random controls ({no_controls})", file=sys.stderr)
    reference = bundled_prompts(langs, split="scan").filter(label="harmless").texts if args.mean else ()
    with ReplyLog(args.replies) if args.replies else nullcontext() as log:
        result = evaluate_effects(lm, prompts, langs, effects, seeds=range(controls), reference=reference,
                                  max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, progress=text_bar(),
                                  on_reply=log.write if log else None)
    if log:
        print(f"wrote {log.count} judged replies to {log.path}", file=sys.stderr)
    result.update(model=lm.spec, fingerprint=lm.info.fingerprint, patch=args.patch,
                  interventions=[{"mode": e.kind, "neurons": len(e.neurons),
                                  "value": e.scale if e.kind == "activate" else None}
                                 for e in effects if e.kind != "patch"])
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return
    print(f"{'lang':<6}{'harmful refusal':>18}{'harmless refusal':>18}{'perplexity':>12}")
    for lang, block in result["languages"].items():
        h, b = block["harmful"], block["harmless"]
        print(f"{lang:<6}{h['refusal_rate']:>11.0%} ± {h['stderr']:.0%}{b['refusal_rate']:>11.0%} ± {b['stderr']:.0%}"
              f"{block['perplexity']:>12.1f}")
    u = result["utility"]
    print(f"utility: perplexity (en) {u['perplexity']:.2f}, multiple choice {u['mc_accuracy']:.0%} ± {u['mc_stderr']:.0%}")
    if controls:
        _print_effect(result["effect"], controls)


def cmd_rejudge(args) -> None:
    from neuronlab.evaluation.replies import read_replies, rejudge

    result = rejudge(read_replies(args.file))
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return
    print(f"{'variant':<18}{'lang':<6}{'harmful refusal':>18}{'harmless refusal':>18}{'changed':>9}")
    for variant, langs in result.items():
        for lang, block in langs.items():
            cells = [f"{block[k]['refusal_rate']:>11.0%} ± {block[k]['stderr']:.0%}" if k in block else f"{'-':>17}"
                     for k in ("harmful", "harmless")]
            changed = sum(b["changed"] for b in block.values())
            print(f"{variant:<18}{lang:<6}{cells[0]:>18}{cells[1]:>18}{changed:>9}")


def _print_effect(effect: dict, seeds: int) -> None:
    """The change vs the plain model, real set beside the random controls."""
    print(f"change vs the plain model: real set | random sets of the same shape (mean ± sd over {seeds} seeds)")
    for lang, block in effect["languages"].items():
        cells = [f"{label} {block[label]['real']:+.0%} ± {block[label]['real_stderr']:.0%} | "
                 f"{block[label]['controls']:+.0%} ± {block[label]['controls_sd']:.0%}"
                 for label in ("harmful", "harmless")]
        ppl = block["perplexity"]
        print(f"{lang:<6}" + "   ".join(cells) + f"   perplexity {ppl['real']:+.1%} | {ppl['controls']:+.1%}")


def cmd_train_donor(args) -> None:
    from neuronlab.training.donors import donor_prompts, train_donor
    from neuronlab.data.prompts import PromptSet
    from neuronlab.training.finetune import TrainConfig
    from neuronlab.data.prompts import bundled_prompts
    from neuronlab.analysis.scan import run_scan, select_sets

    config = TrainConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         opening_weight=args.opening_weight, own_target=args.own_target,
                         avoid_weight=args.avoid_refusal)
    en = bundled_prompts("en")
    lm = _load(args, args.model)
    if args.neurons:
        neurons = load_neuron_set(args.neurons)
    else:
        neurons = select_sets(run_scan(lm, en, ["en"], progress=text_bar()), top_p=args.top_p).ms["en"]
    prompts = PromptSet([*en.filter(split="scan"), *donor_prompts(args.more_harmless)])
    patch = train_donor(lm, neurons, prompts, config, args.harmless_repeat, args.own_tokens, progress=text_bar())
    path = patch.save(args.out)
    print(f"trained {len(neurons)} neurons ({patch.meta['share_of_parameters']:.4%} of parameters) of {lm.spec} "
          f"for {patch.meta['steps']} steps; wrote {path}")


def cmd_train_chat(args) -> None:
    from neuronlab.training.donors import donor_prompts, train_chat
    from neuronlab.training.finetune import TrainConfig
    from neuronlab.neurons.sets import random_per_layer
    from neuronlab.data.prompts import PromptSet, bundled_prompts

    lm, teacher = _load(args, args.model), _load(args, args.teacher)
    neurons = random_per_layer(lm.arch, args.per_layer, seed=args.seed)
    config = TrainConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    prompts = PromptSet([*bundled_prompts("en", split="scan"), *donor_prompts(more=True)])
    patch = train_chat(lm, teacher, neurons, prompts, config, progress=text_bar())
    path = patch.save(args.out)
    print(f"trained {len(neurons)} neurons ({patch.meta['share_of_parameters']:.4%} of parameters) of {lm.spec} "
          f"on {args.teacher}'s replies for {patch.meta['steps']} steps; wrote {path}")


def cmd_finetune(args) -> None:
    from neuronlab.training.expansion import expand
    from neuronlab.training.finetune import TrainConfig

    config = TrainConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         eval_every=args.eval_every, own_target=args.own_target, avoid_weight=args.avoid_refusal)
    neurons = load_neuron_set(args.neurons)
    lm = _load(args, args.model)
    patch = expand(lm, neurons, _csv(args.langs), config, args.replay_en, args.validation, args.limit,
                   args.max_false_refusal, args.harmless_repeat, args.own_tokens, progress=text_bar())
    path = patch.save(args.out)
    meta = patch.meta
    print(f"trained {len(neurons)} neurons ({meta['share_of_parameters']:.4%} of parameters) of {lm.spec} on "
          f"{meta['examples']} examples in {', '.join(meta['langs'])} for {meta['steps']} steps")
    for h in meta["history"]:
        print(f"  step {h['step']:>4}: held-out false refusals {h['false_refusal']:.0%}")
    if meta.get("early_stopped"):
        print(f"stopped early: false refusals above {meta['false_refusal_budget']:.0%}; "
              f"kept the weights of step {meta['kept_step']}")
    print(f"wrote {path}")


def cmd_bench(args) -> None:
    from neuronlab.bench import run_bench

    lm = _load(args, args.model)
    result = run_bench(lm, repeats=args.repeats, new_tokens=args.new_tokens, progress=text_bar())
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"forward_ratio {result['forward_ratio']:.3f}   generate_ratio {result['generate_ratio']:.3f}")


def cmd_ship(args) -> None:
    from neuronlab.ship import ship

    ship(_csv(args.only) if args.only else None, args.out, load=lambda spec: load_model(spec, progress=text_bar()),
         progress=text_bar)


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_scan(args) -> None:
    from neuronlab.data.prompts import bundled_prompts, load_prompts
    from neuronlab.analysis.scan import run_scan, select_sets, write_scan

    langs = _csv(args.langs)
    prompts = load_prompts(args.prompts, langs=langs) if args.prompts else bundled_prompts(langs)
    lm = _load(args, args.model)
    layers = [int(x) for x in _csv(args.layers)] if args.layers else None
    result = run_scan(lm, prompts, langs, method=args.method, site=args.site, split=args.split or None,
                      batch_size=args.batch_size, probes=args.probes, layers=layers,
                      neurons=load_neuron_set(args.neurons) if args.neurons else None,
                      use_cache=not args.no_cache, progress=text_bar())
    safety = select_sets(result, top_p=args.top_p, high_resource=args.high_resource)
    neurons_path, scores_path = write_scan(args.out, result, safety)
    stats = safety.stats()
    print(f"{result.method} scan of {lm.spec} ({', '.join(result.sites)}), top {args.top_p:.1%} per layer; "
          f"{result.cache_hits}/{2 * len(langs)} prompt sets from the cache, {result.shipped} from the shipped results")
    for name, count in stats["counts"].items():
        print(f"  {name:<10} {count:>6} neurons  ({stats['share'][name]:.3%} of {stats['total_neurons']})")
    print(f"wrote {neurons_path} and {scores_path}")


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
    p.add_argument("--patch", help="a transfer patch (.safetensors) to apply to the model first")
    p.add_argument("--no-stream", action="store_true", help="print the reply at the end, not as it comes")
    p.set_defaults(run=cmd_chat)

    p = verbs.add_parser("scan", help="find safety neurons per language (MS) and shared ones (SS)")
    _model_args(p)
    p.add_argument("--langs", default="en,zh,es,fr", help="comma-separated language codes (default en,zh,es,fr)")
    p.add_argument("--prompts", help="JSONL or CSV prompt file (id, lang, label, text[, split]); default: bundled")
    p.add_argument("--method", default="activation", choices=["activation", "ablation", "attribution"])
    p.add_argument("--site", default="mlp", choices=["mlp", "attn", "all"])
    p.add_argument("--top-p", type=float, default=0.03, help="fraction of neurons per layer in S(D) (default 0.03)")
    p.add_argument("--high-resource", default="en", help="the language SS sets are shared with (default en)")
    p.add_argument("--split", default="scan", help="prompt split to use: scan (default), heldout, or '' for all")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--probes", type=int, default=4, help="random probes for attribution (default 4)")
    p.add_argument("--layers", help="ablation: comma-separated layers to score exactly")
    p.add_argument("--neurons", metavar="REF", help="ablation: the neuron set to score exactly")
    p.add_argument("--no-cache", action="store_true", help="recompute even if the scores are cached")
    p.add_argument("--out", required=True, help="output folder for neurons.json and scores.safetensors")
    p.set_defaults(run=cmd_scan)

    p = verbs.add_parser("transfer", help="copy neurons' weights from a donor into a target (CNT); writes a patch")
    _model_args(p, "--donor")
    p.add_argument("--target", required=True, help="the model the patch is for (same architecture as the donor)")
    p.add_argument("--neurons", metavar="REF", help="candidate neurons (default: every MLP neuron)")
    p.add_argument("--rank", default="weight-diff", choices=["weight-diff", "contrast", "causal", "random"],
                   help="how candidates are ranked (default weight-diff); causal: first-order effect of "
                        "swapping each neuron on refusal (harmful minus harmless)")
    p.add_argument("--fraction", type=float, help="share of the candidates to move")
    p.add_argument("--count", type=int, help="number of neurons to move")
    p.add_argument("--delete", action="store_true",
                   help="function deletion: copy the target's neurons into the donor (the patch is for the donor)")
    p.add_argument("--seed", type=int, default=0, help="seed for --rank random")
    p.add_argument("--lang", default="en", help="language of the prompts for contrast, causal and --search")
    p.add_argument("--limit", type=int, default=24, help="scan prompts per label for --rank causal and --search (default 24)")
    p.add_argument("--harmless-weight", type=float, default=1.0,
                   help="causal: weight of the harmless refusal score subtracted (default 1; 0 ignores it)")
    p.add_argument("--out", required=True, help="patch file to write (.safetensors)")
    g = p.add_argument_group("minimal-subset search (--search)")
    g.add_argument("--search", action="store_true",
                   help="grow the moved set along the ranking until --goal is met within the budget")
    g.add_argument("--goal", type=float, default=0.7,
                   help="approximate harmful refusal rate to reach (deletion: to fall to); default 0.7")
    g.add_argument("--max-ppl-change", type=float, default=0.01, help="allowed perplexity rise (default 0.01)")
    g.add_argument("--max-false-refusal", type=float, default=0.1, help="allowed harmless refusal rate (default 0.1)")
    g.add_argument("--max-fraction", type=float, default=0.01, help="largest share of candidates moved (default 0.01)")
    g.add_argument("--start", type=int, default=8, help="first step; each next step doubles it (default 8)")
    g.add_argument("--random-seeds", type=int, default=1, help="random control sets per step (default 1)")
    g.add_argument("--threshold", type=float, default=0.1,
                   help="a prompt counts as refused when its refusal-opening probability is at least this "
                        "(default 0.1; calibrate against judged replies, see neuronlab/search.py)")
    g.add_argument("--verify", action="store_true", help="judge generated replies on held-out prompts at the point found")
    g.add_argument("--curve", default="curve.json", help="curve JSON to write; the HTML figure goes beside it")
    p.set_defaults(run=cmd_transfer)

    p = verbs.add_parser("eval", help="refusal per language (harmful and harmless) and utility, with error bars")
    _model_args(p)
    _intervention_args(p)
    p.add_argument("--patch", help="a patch (.safetensors) to apply to the model first")
    p.add_argument("--mean", action="append", default=[], metavar="REF",
                   help="neuron set to mean-ablate: each neuron held at its mean activation (last prompt token) "
                        "on the harmless scan prompts of --langs (repeatable)")
    p.add_argument("--remove-diff", metavar="MODEL",
                   help="remove the difference between --model (a donor) and MODEL (its target) on --neurons: "
                        "copy MODEL's weights for those neurons into --model")
    p.add_argument("--neurons", metavar="REF", help="the neurons of --remove-diff")
    p.add_argument("--controls", type=int, metavar="N",
                   help="also run every effect with random neuron sets of the same size and per-layer "
                        "distribution, over N seeds; adds baseline, controls and effect blocks to the JSON "
                        "(default 3 when an effect is given; 0 turns them off)")
    p.add_argument("--langs", default="en", help="comma-separated language codes (default en)")
    p.add_argument("--prompts", help="JSONL or CSV prompt file; default: the bundled sets")
    p.add_argument("--split", default="heldout", help="prompt split (default heldout; '' for all)")
    p.add_argument("--limit", type=int, help="use only the first N prompts of each label")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--replies", metavar="FILE",
                   help="also write every judged reply (controls included) to FILE as JSON Lines, for 'rejudge'")
    p.set_defaults(run=cmd_eval)

    p = verbs.add_parser("rejudge", help="judge the replies saved by 'eval --replies' again with the current judge")
    p.add_argument("file", help="a replies file (JSON Lines) written by eval --replies")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_rejudge)

    p = verbs.add_parser("train-donor", help="make a refusing donor by training only chosen neurons (seeded)")
    _model_args(p)
    p.add_argument("--neurons", metavar="REF", help="neurons to train (default: MS(en) of an activation scan)")
    p.add_argument("--top-p", type=float, default=0.03, help="top-p of that scan (default 0.03)")
    _training_args(p, steps=60)
    _own_reply_args(p, own_tokens=64)
    p.add_argument("--opening-weight", type=float, default=4.0,
                   help="loss weight of each reply's first 3 tokens, where refuse-or-answer is decided (default 4)")
    p.add_argument("--more-harmless", action="store_true",
                   help="train on assets/donors/train_en_more.jsonl too (80 more harmless requests)")
    p.set_defaults(run=cmd_train_donor)

    p = verbs.add_parser("train-chat", help="make a chat-following target from a base model by training random "
                         "neurons on a chat model's replies (seeded)")
    _model_args(p)
    p.add_argument("--teacher", default="demo-target", help="the chat model whose replies are learned (default demo-target)")
    p.add_argument("--per-layer", type=int, default=128, help="random MLP neurons trained in each layer (default 128)")
    _training_args(p, steps=60)
    p.set_defaults(run=cmd_train_chat)

    p = verbs.add_parser("finetune", help="SS-Neuron Expansion: train only chosen neurons on a parallel "
                         "multilingual safety set; writes a patch")
    _model_args(p)
    p.add_argument("--neurons", required=True, metavar="REF", help="neurons to train, e.g. DIR/neurons.json#ss")
    p.add_argument("--langs", default="zh,ko,th,bn,sw,ne",
                   help="languages of the safety set (default: the paper's NHR languages zh,ko,th,bn,sw,ne)")
    p.add_argument("--replay-en", action="store_true", help="train on the English examples too")
    p.add_argument("--validation", type=int, default=8,
                   help="harmless scan prompts per language held out for early stopping (default 8; 0: none)")
    p.add_argument("--max-false-refusal", type=float, default=0.15,
                   help="stop once held-out false refusals exceed this (or the starting rate, if higher); "
                        "keep the last weights within it (default 0.15)")
    p.add_argument("--eval-every", type=int, default=10, help="steps between early-stopping checks (default 10)")
    p.add_argument("--limit", type=int, help="train on only the first N scan prompts of each label")
    _training_args(p, steps=40)
    _own_reply_args(p, own_tokens=48)
    p.set_defaults(run=cmd_finetune)

    p = verbs.add_parser("ship", help="compute the results shipped for the built-in models (assets/results): "
                         "scans, suppression, transfer and curve experiments (seeded; hours on a CPU)")
    p.add_argument("--only", metavar="NAME[,NAME]",
                   help="only these items: 'scans' (every scan), scan/MODEL/METHOD, or an experiment "
                        "(demo-donor-suppress, demo-transfer, demo-curve, gemma-donor-suppress)")
    p.add_argument("--out", help="folder to write (default: assets/results, where the app reads them)")
    p.set_defaults(run=cmd_ship)

    p = verbs.add_parser("bench", help="intervened vs plain wall-time ratios (lower is better)")
    _model_args(p)
    p.add_argument("--repeats", type=int, default=5, help="back-to-back pairs per figure (default 5)")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ModelSpecError, NeuronSetError, PromptFileError, PatchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
