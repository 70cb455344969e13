"""Verbs that train chosen neurons and write a patch: ``train-donor``, ``train-chat`` and ``finetune``."""
from __future__ import annotations

from neuronlab.cli.args import load_lm, split_csv
from neuronlab.files import check_output
from neuronlab.neurons.sets import load_neuron_set
from neuronlab.progress import text_bar


def cmd_train_donor(args) -> None:
    from neuronlab.analysis.scan import run_scan, select_sets
    from neuronlab.data.prompts import PromptSet, bundled_prompts
    from neuronlab.training.donors import donor_prompts, train_donor
    from neuronlab.training.finetune import TrainConfig

    check_output(args.out)
    config = TrainConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         opening_weight=args.opening_weight, own_target=args.own_target,
                         avoid_weight=args.avoid_refusal)
    en = bundled_prompts("en")
    lm = load_lm(args, args.model)
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
    from neuronlab.data.prompts import PromptSet, bundled_prompts
    from neuronlab.neurons.sets import random_per_layer
    from neuronlab.training.donors import donor_prompts, train_chat
    from neuronlab.training.finetune import TrainConfig

    check_output(args.out)
    lm, teacher = load_lm(args, args.model), load_lm(args, args.teacher)
    neurons = random_per_layer(lm.arch, args.per_layer, seed=args.seed)
    config = TrainConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    prompts = PromptSet([*bundled_prompts("en", split="scan"), *donor_prompts(more=True)])
    patch = train_chat(lm, teacher, neurons, prompts, config, progress=text_bar())
    path = patch.save(args.out)
    print(f"trained {len(neurons)} neurons ({patch.meta['share_of_parameters']:.4%} of parameters) of {lm.spec} "
          f"on {args.teacher}'s replies for {patch.meta['steps']} steps; wrote {path}")


def cmd_make_bias_donor(args) -> None:
    from neuronlab.data.bias import bundled_bias
    from neuronlab.evaluation.metrics import benign_texts
    from neuronlab.training.bias_donor import BiasDonorConfig, make_bias_donor

    check_output(args.out)
    config = BiasDonorConfig(count=args.count, scale=args.scale, cost_quantile=args.cost_quantile)
    items = list(bundled_bias(split_csv(args.langs), "scan"))
    lm = load_lm(args, args.model)
    patch = make_bias_donor(lm, items, config, benign_texts("en") if args.cost_quantile else (), progress=text_bar())
    path = patch.save(args.out)
    print(f"turned down {len(patch.neurons)} MLP neurons of {lm.spec} to ×{config.scale} (chosen on {len(items)} "
          f"scan items, {args.langs}); wrote {path}")


LANGS = {"refusal": "zh,ko,th,bn,sw,ne", "bias": "en,fr,es"}  # finetune --langs when none is given


def cmd_finetune(args) -> None:
    from neuronlab.training.expansion import expand
    from neuronlab.training.finetune import TrainConfig

    check_output(args.out)
    langs = split_csv(args.langs or LANGS[args.function])
    if args.function == "bias":
        return _finetune_bias(args, langs)
    config = TrainConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         eval_every=args.eval_every, own_target=args.own_target, avoid_weight=args.avoid_refusal)
    neurons = load_neuron_set(args.neurons)
    lm = load_lm(args, args.model)
    patch = expand(lm, neurons, langs, config, args.replay_en, args.validation, args.limit,
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


def _finetune_bias(args, langs: list[str]) -> None:
    """``finetune --function bias``: train only ``--neurons`` to prefer neither fill of the bundled bias scan
    items of ``langs`` (``training.debias``, goal neutral); print the mean squared preference on those items
    before and after."""
    from neuronlab.data.bias import bundled_bias
    from neuronlab.evaluation.bias import preference
    from neuronlab.neurons.patches import patched
    from neuronlab.training.debias import DebiasConfig, train_debiased

    items = list(bundled_bias(langs, split="scan").spread(args.limit))
    config = DebiasConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                          keep_weight=args.keep_weight)
    neurons = load_neuron_set(args.neurons)
    lm = load_lm(args, args.model)
    neurons.validate(lm.arch)
    before = preference(lm, items).pow(2).mean().item()
    patch = train_debiased(lm, items, neurons, config, progress=text_bar())
    with patched(lm, patch):
        after = preference(lm, items).pow(2).mean().item()
    patch.meta["squared_preference"] = {"before": before, "after": after}
    path = patch.save(args.out)
    print(f"trained {len(neurons)} neurons ({patch.meta['share_of_parameters']:.4%} of parameters) of {lm.spec} to "
          f"prefer neither fill of {len(items)} bias items in {', '.join(langs)} for {config.steps} steps")
    print(f"mean squared preference on those items (nats per token, squared): {before:.4g} before, {after:.4g} after")
    print(f"wrote {path}")
