"""Verbs that look at a model: ``models``, ``chat`` (with interventions) and ``scan`` (find safety neurons)."""
from __future__ import annotations

import json
import sys

from neuronlab.cli.args import load_interventions, load_lm, load_patch, split_csv
from neuronlab.errors import NeuronLabError
from neuronlab.files import check_output
from neuronlab.models.builtins import BUILTINS
from neuronlab.neurons.sets import load_neuron_set
from neuronlab.progress import text_bar


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
    from neuronlab.neurons.patches import apply_patch

    interventions = load_interventions(args)
    lm = load_lm(args, args.model)
    if args.patch:
        apply_patch(lm, load_patch(args, lm))
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


def cmd_scan(args) -> None:
    from neuronlab.analysis.scan import run_scan, select_sets, write_scan
    from neuronlab.data.bias import BUNDLED_LANGUAGES as BIAS_LANGUAGES
    from neuronlab.data.bias import bundled_bias
    from neuronlab.data.prompts import LABELS, bundled_prompts, load_prompts
    from neuronlab.evaluation.functions import BIAS

    check_output(args.out, "dir")
    if args.function == "bias":
        if args.prompts or args.labels != LABELS:
            raise NeuronLabError("--function bias scans the bundled bias items; --prompts and --labels are for your "
                                 "own function (leave --function at refusal)")
        langs = split_csv(args.langs or ",".join(BIAS_LANGUAGES))
        prompts, args.labels = bundled_bias(langs).as_prompts(), BIAS.labels
    else:
        langs = split_csv(args.langs or "en,zh,es,fr")
        if args.labels != LABELS and not args.prompts:
            raise NeuronLabError(f"--labels {','.join(args.labels)} needs --prompts FILE with those labels (the "
                                 "bundled prompts are harmful,harmless)")
        prompts = load_prompts(args.prompts, langs=langs, labels=args.labels) if args.prompts else bundled_prompts(langs)
    lm = load_lm(args, args.model)
    layers = [int(x) for x in split_csv(args.layers)] if args.layers else None
    result = run_scan(lm, prompts, langs, method=args.method, site=args.site, split=args.split or None,
                      batch_size=args.batch_size, probes=args.probes, layers=layers,
                      neurons=load_neuron_set(args.neurons) if args.neurons else None,
                      use_cache=not args.no_cache, progress=text_bar(), labels=args.labels)
    safety = select_sets(result, top_p=args.top_p, high_resource=args.high_resource)
    neurons_path, scores_path = write_scan(args.out, result, safety)
    stats = safety.stats()
    print(f"{result.method} scan of {lm.spec} ({', '.join(result.sites)}), top {args.top_p:.1%} per layer; "
          f"{result.cache_hits}/{2 * len(langs)} prompt sets from the cache, {result.shipped} from the shipped results")
    for name, count in stats["counts"].items():
        print(f"  {name:<10} {count:>6} neurons  ({stats['share'][name]:.3%} of {stats['total_neurons']})")
    print(f"wrote {neurons_path} and {scores_path}")
