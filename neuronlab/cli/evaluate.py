"""The ``eval`` verb (refusal and utility, with random controls; ``--function bias``: the stereotype and LM
scores of bias items; ``match`` and ``openings``: a function of your own) and ``rejudge`` (saved replies judged
again)."""
from __future__ import annotations

import json
import sys
from contextlib import nullcontext

from neuronlab.cli.args import load_lm, load_patch, split_csv
from neuronlab.data.bias import bundled_bias
from neuronlab.data.prompts import LABELS
from neuronlab.files import check_output
from neuronlab.neurons.sets import load_neuron_set
from neuronlab.progress import text_bar


def _eval_sets(args) -> dict:
    """Every neuron set the flags name, read (and checked) before any model loads."""
    refs = [*args.suppress, *args.activate, *args.mean, *([args.neurons] if args.neurons else [])]
    return {ref: load_neuron_set(ref) for ref in refs}


def _interventions(args, sets: dict, lm) -> list:
    """``--suppress`` and ``--activate`` as interventions, checked against ``lm`` (bias and match evaluations)."""
    from neuronlab.neurons.interventions import Intervention

    out = ([Intervention(sets[r], "suppress", label=r) for r in args.suppress]
           + [Intervention(sets[r], "activate", args.scale, label=r) for r in args.activate])
    for iv in out:
        iv.neurons.validate(lm.arch)
    return out


def _eval_effects(args, lm, sets: dict) -> tuple[list, str]:
    """The effects ``eval`` measures, and why random controls cannot be run for them ('' when they can)."""
    from neuronlab.evaluation.effects import Effect, copy_from
    from neuronlab.experiments import patch_effect
    from neuronlab.transfer.compatibility import require_compatible

    if args.remove_diff and not args.neurons:
        raise ValueError("--remove-diff needs --neurons REF (the neurons whose difference is removed)")
    effects, no_controls = [], ""
    if args.patch:
        patch = load_patch(args, lm)
        source = patch.meta.get("source") if patch.kind == "transfer" else None
        effect, no_controls = patch_effect(lm, patch, load_lm(args, source) if source else None,
                                           label=f"patch {args.patch}", progress=text_bar())
        effects.append(effect)
    if args.remove_diff:
        target = load_lm(args, args.remove_diff)
        require_compatible(lm, target)
        effects.append(Effect("patch", sets[args.neurons], make_patch=copy_from(target),
                              label=f"remove-diff {args.remove_diff}"))
    effects += ([Effect("suppress", sets[r], label=r) for r in args.suppress]
                + [Effect("activate", sets[r], args.scale, label=r) for r in args.activate]
                + [Effect("mean", sets[r], label=r) for r in args.mean])
    return effects, no_controls


def _control_count(args, effects: list, no_controls: str) -> int:
    """How many random controls to run: ``--controls``, else 3 when there is an effect that can have them; notes
    on stderr when there are none."""
    controls = args.controls if args.controls is not None else (0 if no_controls or not effects else 3)
    if controls and no_controls:
        raise ValueError(f"no random controls: {no_controls}; run with --controls 0")
    if no_controls and args.controls is None:
        print(f"note: no random controls ({no_controls})", file=sys.stderr)
    elif effects and not controls:
        print("note: random controls off (--controls 0): the effect is not compared with random neuron sets",
              file=sys.stderr)
    return controls


def cmd_eval(args) -> None:
    if args.function == "bias":
        return eval_bias(args)
    for flag, value, function in (("--match", args.match, "match"), ("--openings", args.openings, "openings"),
                                  ("--threshold", args.threshold, "openings")):
        if value is not None and args.function != function:
            raise ValueError(f"{flag} is for --function {function}")
    own = {"match": eval_match, "openings": eval_openings}.get(args.function)  # a function of your own
    if own:
        return own(args)
    if args.labels != LABELS:
        raise ValueError(f"--labels {','.join(args.labels)} is for --function match or openings (refusal's labels "
                         f"are {','.join(LABELS)})")
    from neuronlab.data.prompts import bundled_prompts, load_prompts
    from neuronlab.evaluation.effects import evaluate_effects
    from neuronlab.evaluation.replies import ReplyLog
    from neuronlab.experiments import heldout_prompts

    if args.replies:
        check_output(args.replies)
    langs = split_csv(args.langs)
    prompts = heldout_prompts(langs, args.limit, load_prompts(args.prompts, langs=langs) if args.prompts else None,
                              split=args.split)
    sets = _eval_sets(args)
    lm = load_lm(args, args.model)
    effects, no_controls = _eval_effects(args, lm, sets)
    controls = _control_count(args, effects, no_controls)
    reference = bundled_prompts(langs, split="scan").filter(label="harmless").texts if args.mean else ()
    with ReplyLog(args.replies) if args.replies else nullcontext() as log:
        result = evaluate_effects(lm, prompts, langs, effects, seeds=range(controls), reference=reference,
                                  max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, progress=text_bar(),
                                  on_reply=log.write if log else None, mc_questions=args.mc_questions)
    if log:
        print(f"wrote {log.count} judged replies to {log.path}", file=sys.stderr)
    _add_run_facts(result, args, lm, effects)
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


def _add_run_facts(result: dict, args, lm, effects) -> None:
    """What an effects result was measured on: the model, its patch and interventions; and, when no control ran,
    an empty ``controls`` block of the same shape (none asked for: say so)."""
    result.setdefault("controls", {"seeds": [], "runs": []})
    result.update(model=lm.spec, fingerprint=lm.info.fingerprint, patch=args.patch,
                  interventions=[{"mode": e.mode, "neurons": len(e.neurons),
                                  "value": e.value if e.mode == "activate" else None}
                                 for e in effects if e.mode != "patch"])


def bias_items() -> list:
    """The bundled bias items (``neuronlab.data.bias``), every language and split."""
    return list(bundled_bias())


def chosen_bias_items(langs: list[str], split: str, limit: int | None) -> list:
    """The bias items of ``langs`` in ``split`` ('' for all), the first ``limit`` of each language."""
    every = bias_items()
    chosen = []
    for lang in langs:
        part = [it for it in every if it.lang == lang and (not split or it.split == split)]
        if not part:
            have = ", ".join(sorted({it.lang for it in every if not split or it.split == split})) or "none"
            raise ValueError(f"no bias items in {lang!r} (split {split or 'any'}); there are items in: {have}")
        chosen += part[:limit]
    return chosen


def eval_bias(args) -> None:
    """``eval --function bias``: stereotype score, LM score and ICAT per language, with perplexity; with an effect,
    the plain model and random controls beside it."""
    from neuronlab.evaluation.bias_effects import bias_effects

    unsupported = [flag for flag, given in (("--prompts", args.prompts), ("--mean", args.mean),
                                            ("--replies", args.replies)) if given]
    if unsupported:
        raise ValueError(f"{', '.join(unsupported)}: not available with --function bias yet "
                         "(it takes --suppress, --activate, --patch and --remove-diff)")
    langs = split_csv(args.langs)
    items = chosen_bias_items(langs, args.split, args.limit)
    sets = _eval_sets(args)
    lm = load_lm(args, args.model)
    effects, no_controls = _eval_effects(args, lm, sets)
    if args.controls and not effects:
        raise ValueError("--controls needs an effect to compare with random neurons "
                         "(--suppress, --activate, --patch or --remove-diff)")
    controls = _control_count(args, effects, no_controls)
    result = {"function": "bias", **bias_effects(lm, items, effects, seeds=range(controls),
                                                 batch_size=args.batch_size, progress=text_bar())}
    result["split"] = args.split
    _add_run_facts(result, args, lm, effects)
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return
    print(f"{'lang':<8}{'n':>5}{'stereotype score':>20}{'LM score':>16}{'ICAT':>7}  (50% stereotype = no preference)")
    for lang, b in [*result["languages"].items(), ("overall", result["overall"])]:
        print(f"{lang:<8}{b['n']:>5}{b['stereotype_score']:>13.0%} ± {b['stereotype_stderr']:<4.0%}"
              f"{b['lm_score']:>9.0%} ± {b['lm_stderr']:<4.0%}{b['icat']:>6.2f}")
    print(f"utility: perplexity (en) {result['utility']['perplexity']:.2f}")
    if controls:
        _print_bias_effect(result["effect"], controls)


def _print_bias_effect(effect: dict, seeds: int) -> None:
    """The bias change vs the plain model, real set beside the random controls."""
    print(f"change vs the plain model: real set | random sets of the same shape (mean ± sd over {seeds} seeds); "
          "toward 50%: the fall of |stereotype score − 50%|")
    for lang, b in [*effect["languages"].items(), ("overall", effect["overall"])]:
        ss, near, lms = b["stereotype_score"], b["distance_from_50"], b["lm_score"]
        ppl = f"   perplexity {b['perplexity']['real']:+.1%} | {b['perplexity']['controls']:+.1%}" \
            if "perplexity" in b else ""
        print(f"{lang:<8}stereotype {ss['real']:+.1%} ± {ss['real_stderr']:.1%} | {ss['controls']:+.1%} ± "
              f"{ss['controls_sd']:.1%}   toward 50% {-near['real']:+.1%} | {-near['controls']:+.1%}   "
              f"LM {lms['real']:+.1%} | {lms['controls']:+.1%}{ppl}")


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


def eval_match(args) -> None:
    """``eval --function match``: the share of replies to each label's prompts that match ``--match``."""
    from neuronlab.evaluation.functions import check_pattern, match_function, match_rates

    if not (args.prompts and args.match):
        raise ValueError("--function match needs --prompts FILE (with the two --labels) and --match REGEX")
    pattern = check_pattern(args.match)
    eval_own(args, match_function(args.labels, pattern), {"pattern": pattern.pattern},
             lambda lm, prompts, langs, ivs: match_rates(lm, prompts, langs, args.labels, pattern, ivs,
                                                         args.max_new_tokens, args.batch_size, progress=text_bar()))


def eval_openings(args) -> None:
    """``eval --function openings``: the share of each label's prompts whose reply opens with one of ``--openings``
    with probability at least ``--threshold`` (no generation), and the mean log-probability."""
    from neuronlab.evaluation.functions import THRESHOLD, check_openings, opening_rates, openings_function

    if not (args.prompts and args.openings is not None):
        raise ValueError("--function openings needs --prompts FILE (with the two --labels) and --openings 'A|B|…'")
    openings = check_openings(args.openings)
    threshold = THRESHOLD if args.threshold is None else args.threshold
    eval_own(args, openings_function(args.labels, openings, threshold),
             {"openings": list(openings), "threshold": threshold},
             lambda lm, prompts, langs, ivs: opening_rates(lm, prompts, langs, args.labels, openings, threshold, ivs,
                                                           args.batch_size, progress=text_bar()))


def eval_own(args, function, given: dict, rates) -> None:
    """A function of your own (``--labels`` of ``--prompts``), per language, as loaded and with the interventions
    (or patch): ``rates(lm, prompts, langs, interventions)`` gives {lang: {label: Rate dict "hit"s}}; ``given``:
    the metric's own inputs for the JSON."""
    from neuronlab.data.prompts import load_prompts
    from neuronlab.experiments import heldout_prompts
    from neuronlab.neurons.patches import patched

    unsupported = [flag for flag, on in (("--controls", args.controls), ("--mean", args.mean),
                                         ("--remove-diff", args.remove_diff), ("--replies", args.replies)) if on]
    if unsupported:
        raise ValueError(f"{', '.join(unsupported)}: not available with --function {args.function} yet")
    langs = split_csv(args.langs)
    prompts = heldout_prompts(langs, args.limit, load_prompts(args.prompts, langs=langs, labels=args.labels),
                              split=args.split)
    sets = _eval_sets(args)
    lm = load_lm(args, args.model)
    interventions = _interventions(args, sets, lm)
    variants = {"plain": []} | ({"intervened": interventions} if interventions else {})
    with patched(lm, load_patch(args, lm)) if args.patch else nullcontext():
        results = {name: rates(lm, prompts, langs, ivs) for name, ivs in variants.items()}
    doc = {"function": function.name, "metric": function.metric, "labels": list(args.labels), **given,
           "model": lm.spec, "patch": args.patch, "variants": results}
    if "intervened" in results:
        doc["change"] = {lang: {label: results["intervened"][lang][label]["hit_rate"] - block["hit_rate"]
                                for label, block in by.items()} for lang, by in results["plain"].items()}
    if args.json:
        print(json.dumps(doc, indent=1, ensure_ascii=False))
        return
    print(f"{function.metric}")
    for name, by_lang in results.items():
        for lang, by in by_lang.items():
            cells = [f"{label} {b['hit_rate']:.0%} ± {b['stderr']:.0%} (n={b['n']}"
                     + (f", mean log p {b['mean_logp']:.2f})" if "mean_logp" in b else ")") for label, b in by.items()]
            print(f"{name:<11} {lang:<5} " + " · ".join(cells))
