"""The ``inspect`` verb: what one neuron does (the neuron card of the app, as text or JSON)."""
from __future__ import annotations

import json

from neuronlab.cli.args import load_lm, split_csv
from neuronlab.data.prompts import LABELS, bundled_prompts, load_prompts
from neuronlab.errors import NeuronLabError
from neuronlab.experiments import heldout_prompts
from neuronlab.inspector import Inspection, compare_in_donor, inspect_neuron
from neuronlab.neurons.sets import load_neuron_set, parse_neurons
from neuronlab.progress import language_name, text_bar


def cmd_inspect(args) -> None:
    from neuronlab.analysis.activations import activation_pass
    from neuronlab.evaluation.neuron_effect import neuron_effect
    from neuronlab.neurons.patches import Patch
    from neuronlab.transfer.ranking import weight_diff_scores

    langs = split_csv(args.langs)
    sets = {ref: load_neuron_set(ref) for ref in args.set}
    patch = Patch.load(args.patch) if args.patch else None
    source = load_prompts(args.prompts, langs=langs) if args.prompts else bundled_prompts(langs)
    lm = load_lm(args, args.model)
    typed = parse_neurons(args.neuron, lm.arch)
    if len(typed) != 1:
        raise NeuronLabError(f"--neuron {args.neuron!r} names {len(typed):,} neurons; name one, e.g. '20 mlp 1292'")
    neuron = next(iter(typed))
    if patch is not None:
        sets[f"patch {args.patch}"] = patch.neurons
    prompts = heldout_prompts(langs, args.per_label, source, split=args.split)
    acts = activation_pass(lm, prompts, (neuron.site,), progress=text_bar())
    effect = None if args.no_effect else neuron_effect(
        lm, neuron, heldout_prompts(langs, args.per_label, source), langs, args.scale, args.controls,
        progress=text_bar())
    donor = None
    if args.donor:
        other = load_lm(args, args.donor)
        diff = weight_diff_scores(other, lm, (neuron.site,))
        donor = compare_in_donor(neuron, other.spec, diff, acts,
                                 activation_pass(other, prompts, (neuron.site,), progress=text_bar()))
    found = inspect_neuron(lm, acts, neuron, sets, effect, donor, top_k=args.top)
    if args.json:
        print(json.dumps(found.to_dict(), indent=1))
    else:
        print_inspection(found)


def print_inspection(found: Inspection) -> None:
    p = found.profile
    layer, site, index = p.neuron
    print(f"{p.model} · neuron {layer} {site} {index} · {p.n_prompts} prompts")
    print("activation: at the last prompt token (mean ± sd) | highest over the prompt (mean)")
    for lang, labels in p.stats.items():
        for label, m in labels.items():
            print(f"  {language_name(lang):<10} {label:<9} {m['last'].mean:+8.3f} ± {m['last'].std:.3f} | "
                  f"{m['max'].mean:+8.3f}")
    for title, hits in (("fires most on", p.top), ("most negative on", p.negative)):
        print(f"{title}:")
        for h in hits:
            print(f"  {h.value:+8.3f} at {h.token!r:<12} {h.lang} {h.label:<8} {h.text[:70]!r}")
    if p.promoted:
        print("writes toward (logit lens): " + ", ".join(repr(t.token) for t in p.promoted))
        print("writes away from:           " + ", ".join(repr(t.token) for t in p.suppressed))
    if found.effect:
        e = found.effect
        print(f"refusal score change (log-probability of a refusal opening; held-out prompts, {len(e.control_neurons)} "
              "random neurons of the layer as reference):")
        for mode, what in (("suppress", "switched off"), ("activate", f"scaled ×{e.scale:g}")):
            change, controls = e.change(mode), e.control_change(mode)
            for lang in change:
                cells = [f"{label} {change[lang][label]:+.3f} (random {controls[lang][label][0]:+.3f} ± "
                         f"{controls[lang][label][1]:.3f})" for label in LABELS]
                print(f"  {what:<13} {language_name(lang):<10} " + " · ".join(cells))
    if found.donor:
        d = found.donor
        print(f"in {d.donor}: weights changed by {d.weight_change:.4f} (rank {d.rank:,} of {d.of:,}); "
              "activation change: " + ", ".join(f"{lang} {label} {v:+.3f}" for lang, by in d.activation_change.items()
                                                 for label, v in by.items()))
    if found.membership:
        print("in sets: " + ", ".join(f"{name} {'yes' if inside else 'no'}" for name, inside in found.membership.items()))

