"""Command line: ``python -m neuronlab VERB ...`` (``--help`` on every verb).

The parser and ``main`` live here; the verbs live in modules by stage: ``explore`` (models, chat, scan),
``inspect``, ``transfer``, ``evaluate`` (eval, rejudge), ``train`` (train-donor, train-chat, finetune) and ``maintenance``
(ship, bench), with the options they share in ``args``.
"""
from __future__ import annotations

import argparse
import sys

from neuronlab.cli.args import (
    add_intervention_args,
    add_model_args,
    add_own_reply_args,
    add_training_args,
    csv_list,
    damping,
    finite_float,
    fraction,
    int_list,
    label_pair,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    rate,
    utf8_text,
)
from neuronlab.cli.evaluate import cmd_eval, cmd_rejudge
from neuronlab.cli.explore import cmd_chat, cmd_models, cmd_scan
from neuronlab.cli.inspect import cmd_inspect
from neuronlab.cli.maintenance import cmd_bench, cmd_ship
from neuronlab.cli.train import cmd_finetune, cmd_make_bias_donor, cmd_train_chat, cmd_train_donor
from neuronlab.cli.transfer import cmd_transfer
from neuronlab.threads import use_default_threads
from neuronlab.training.bias_donor import BiasDonorConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m neuronlab",
                                     description="Find, look at, switch and move the safety neurons of causal LMs.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("models", help="list the built-in models")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_models)

    p = verbs.add_parser("chat", help="reply to one prompt, with neurons suppressed or activated")
    add_model_args(p)
    add_intervention_args(p)
    p.add_argument("--prompt", type=utf8_text, required=True, help="the user message")
    p.add_argument("--max-new-tokens", type=positive_int, default=128)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=positive_float, default=0.7)
    p.add_argument("--top-p", type=probability, default=0.9)
    p.add_argument("--seed", type=non_negative_int, default=None)
    p.add_argument("--patch", help="a transfer patch (.safetensors) to apply to the model first")
    p.add_argument("--force", action="store_true",
                   help="apply --patch even if it was made for another model or names none (a warning is printed)")
    p.add_argument("--no-stream", action="store_true", help="print the reply at the end, not as it comes")
    p.set_defaults(run=cmd_chat)

    p = verbs.add_parser("scan", help="find safety neurons per language (MS) and shared ones (SS)")
    add_model_args(p)
    p.add_argument("--function", default="refusal", choices=("refusal", "bias"),
                   help="refusal (default): harmful vs harmless prompts; bias: the stereotype vs anti-stereotype "
                        "sentences of the bundled bias items (labels stereotype,anti_stereotype)")
    p.add_argument("--langs", type=csv_list, help="comma-separated language codes (default en,zh,es,fr; bias: en,fr,es)")
    p.add_argument("--prompts", help="JSONL or CSV prompt file (id, lang, label, text[, split]); default: bundled")
    p.add_argument("--method", default="activation", choices=["activation", "ablation", "attribution"])
    p.add_argument("--site", default="mlp", choices=["mlp", "attn", "all"])
    p.add_argument("--top-p", type=fraction, default=0.03, help="fraction of neurons per layer in S(D) (default 0.03)")
    p.add_argument("--labels", type=label_pair, default="harmful,harmless",
                   help="the two labels of --prompts to contrast, the behaviour's first (default harmful,harmless: "
                        "refusal); MS = top on the first, not on the second")
    p.add_argument("--high-resource", default="en", help="the language SS sets are shared with (default en)")
    p.add_argument("--split", default="scan", help="prompt split to use: scan (default), heldout, or '' for all")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--probes", type=positive_int, default=4, help="random probes for attribution (default 4)")
    p.add_argument("--layers", type=int_list, help="ablation: comma-separated layers to score exactly")
    p.add_argument("--neurons", metavar="REF", help="ablation: the neuron set to score exactly")
    p.add_argument("--no-cache", action="store_true", help="recompute even if the scores are cached")
    p.add_argument("--out", required=True, help="output folder for neurons.json and scores.safetensors")
    p.set_defaults(run=cmd_scan)

    p = verbs.add_parser("inspect", help="what one neuron does: activations per language, top prompts, the tokens "
                                         "it writes toward, its causal effect on refusal, and a donor's change")
    add_model_args(p)
    p.add_argument("--neuron", required=True, help="one neuron: LAYER SITE INDEX, e.g. '20 mlp 1292'")
    p.add_argument("--donor", help="compare with this model: weight change (and its rank), activation change")
    p.add_argument("--langs", type=csv_list, default="en,zh", help="comma-separated language codes (default en,zh)")
    p.add_argument("--prompts", help="JSONL or CSV prompt file (id, lang, label, text[, split]); default: bundled")
    p.add_argument("--per-label", type=positive_int, default=8, help="prompts per language and label (default 8)")
    p.add_argument("--split", default="scan",
                   help="the prompts the activations are read on: scan (default, those a scan selects on), heldout, "
                        "or '' for all; the causal effect is always measured on held-out prompts")
    p.add_argument("--top", type=positive_int, default=5, help="top and most negative prompts to list (default 5)")
    p.add_argument("--no-effect", action="store_true", help="skip the causal effect (it takes forward passes)")
    p.add_argument("--controls", type=non_negative_int, default=4,
                   help="random neurons of the same layer and site measured beside it (default 4)")
    p.add_argument("--scale", type=finite_float, default=2.0, help="the factor of the scaled-up effect (default 2)")
    p.add_argument("--set", action="append", default=[], metavar="REF",
                   help="say whether the neuron is in this set: FILE.json or DIR/neurons.json#KEY (repeatable)")
    p.add_argument("--patch", help="say whether the neuron is in this patch (.safetensors; not applied)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_inspect)

    p = verbs.add_parser("transfer", help="copy neurons' weights from a donor into a target (CNT); writes a patch")
    add_model_args(p, "--donor")
    p.add_argument("--target", required=True, help="the model the patch is for (same architecture as the donor)")
    p.add_argument("--neurons", metavar="REF", help="candidate neurons (default: every MLP neuron)")
    p.add_argument("--function", default="refusal", choices=("refusal", "bias"),
                   help="the behaviour moved (default refusal). bias: bias removal from the model the patch is for "
                        "(the target; with --delete, the donor), on the bundled bias items of --lang (en, fr, es): "
                        "--rank causal ranks by how far a swap moves the mean stereotype preference toward 0, "
                        "contrast by the donor's stereotype vs anti-stereotype sentences, and --search aims at a "
                        "stereotype score near 50%%")
    p.add_argument("--rank", default="weight-diff", choices=["weight-diff", "contrast", "causal", "random"],
                   help="how candidates are ranked (default weight-diff); causal: first-order effect of "
                        "swapping each neuron on refusal (harmful minus harmless) or, for bias, on the preference")
    p.add_argument("--fraction", type=fraction, help="share of the candidates to move")
    p.add_argument("--count", type=positive_int, help="number of neurons to move")
    p.add_argument("--delete", action="store_true",
                   help="function deletion: copy the target's neurons into the donor (the patch is for the donor)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed for --rank random")
    p.add_argument("--lang", default="en", help="language of the prompts (bias: items) for contrast, causal and --search")
    p.add_argument("--limit", type=positive_int, default=24,
                   help="scan prompts per label (bias: scan items, spread over the domains) for --rank causal and "
                        "--search (default 24)")
    p.add_argument("--harmless-weight", type=non_negative_float, default=1.0,
                   help="refusal, causal: weight of the harmless refusal score subtracted (default 1; 0 ignores it)")
    p.add_argument("--out", required=True, help="patch file to write (.safetensors)")
    g = p.add_argument_group("minimal-subset search (--search)")
    g.add_argument("--search", action="store_true",
                   help="grow the moved set along the ranking until --goal is met within the budget")
    g.add_argument("--goal", type=finite_float,
                   help="refusal: approximate harmful refusal rate to reach (deletion: to fall to), default 0.7; "
                        "bias: the stereotype score on the scan items may be at most this far from 50%% "
                        "(0.55: between 45%% and 55%%), default 0.55")
    g.add_argument("--max-ppl-change", type=non_negative_float, default=0.01, help="allowed perplexity rise (default 0.01)")
    g.add_argument("--max-false-refusal", type=rate, default=0.1,
                   help="refusal: allowed harmless refusal rate (default 0.1)")
    g.add_argument("--max-lm-drop", type=rate, default=0.02,
                   help="bias: allowed fall of the LM score on the scan items (default 0.02: 2 points)")
    g.add_argument("--max-fraction", type=fraction, default=0.01, help="largest share of candidates moved (default 0.01)")
    g.add_argument("--start", type=positive_int, default=8, help="first step; each next step doubles it (default 8)")
    g.add_argument("--random-seeds", type=non_negative_int, default=1, help="random control sets per step (default 1)")
    g.add_argument("--threshold", type=probability, default=0.1,
                   help="refusal: a prompt counts as refused when its refusal-opening probability is at least this "
                        "(default 0.1; calibrate against judged replies, see neuronlab/transfer/curve.py)")
    g.add_argument("--verify", action="store_true",
                   help="at the point found, and for random neurons like it, judge generated replies on held-out "
                        "prompts (bias: stereotype and LM scores on the held-out bias items)")
    g.add_argument("--curve", default="curve.json", help="curve JSON to write; the HTML figure goes beside it")
    p.set_defaults(run=cmd_transfer)

    p = verbs.add_parser("eval", help="refusal per language (harmful and harmless) and utility, with error bars; "
                         "--function bias: stereotype and LM scores")
    add_model_args(p)
    p.add_argument("--function", default="refusal", choices=("refusal", "bias", "match", "openings"),
                   help="what to measure: refusal (default) or bias, the stereotype score (share of bundled bias "
                        "items whose stereotype fill the model prefers to the anti-stereotype; 50%% = none) and "
                        "the LM score, with error bars; or your own behaviour on --prompts of each of --labels: "
                        "match, the share of replies that match --match, or openings, the share of prompts whose "
                        "reply opens with one of --openings with probability at least --threshold (no generation). "
                        "Bias, match and openings take --suppress, --activate and --patch; bias also --remove-diff "
                        "and random --controls; --mean and --replies are refusal-only for now")
    p.add_argument("--labels", type=label_pair, default="harmful,harmless",
                   help="--function match or openings: the two labels of --prompts (the behaviour's side first)")
    p.add_argument("--match", metavar="REGEX", help="--function match: a reply that matches this regular expression "
                                                     "(case-insensitive) shows the behaviour")
    p.add_argument("--openings", metavar="'A|B|…'",
                   help="--function openings: the reply openings that show the behaviour, separated by | "
                        "(1 to 50, each at most 200 characters), e.g. 'Bonjour|Je|Oui'")
    p.add_argument("--threshold", type=probability,
                   help="--function openings: a prompt counts when its reply opens with one of --openings with at "
                        "least this probability (default 0.1)")
    add_intervention_args(p)
    p.add_argument("--patch", help="a patch (.safetensors) to apply to the model first")
    p.add_argument("--force", action="store_true",
                   help="apply --patch even if it was made for another model or names none (a warning is printed)")
    p.add_argument("--mean", action="append", default=[], metavar="REF",
                   help="neuron set to mean-ablate: each neuron held at its mean activation (last prompt token) "
                        "on the harmless scan prompts of --langs (repeatable)")
    p.add_argument("--remove-diff", metavar="MODEL",
                   help="remove the difference between --model (a donor) and MODEL (its target) on --neurons: "
                        "copy MODEL's weights for those neurons into --model")
    p.add_argument("--neurons", metavar="REF", help="the neurons of --remove-diff")
    p.add_argument("--controls", type=non_negative_int, metavar="N",
                   help="also run every effect with random neuron sets of the same size and per-layer "
                        "distribution, over N seeds; adds baseline, controls and effect blocks to the JSON "
                        "(default 3 when an effect is given; 0 turns them off)")
    p.add_argument("--langs", type=csv_list, default="en", help="comma-separated language codes (default en)")
    p.add_argument("--prompts", help="JSONL or CSV prompt file; default: the bundled sets")
    p.add_argument("--split", default="heldout", help="prompt split (default heldout; '' for all)")
    p.add_argument("--limit", type=positive_int, help="use only the first N prompts of each label")
    p.add_argument("--mc-questions", type=positive_int, metavar="N",
                   help="utility: answer only the first N bundled multiple-choice questions (default: all)")
    p.add_argument("--max-new-tokens", type=positive_int, default=48)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--replies", metavar="FILE",
                   help="also write every judged reply (controls included) to FILE as JSON Lines, for 'rejudge'")
    p.set_defaults(run=cmd_eval)

    p = verbs.add_parser("rejudge", help="judge the replies saved by 'eval --replies' again with the current judge")
    p.add_argument("file", help="a replies file (JSON Lines) written by eval --replies")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_rejudge)

    p = verbs.add_parser("train-donor", help="make a refusing donor by training only chosen neurons (seeded)")
    add_model_args(p)
    p.add_argument("--neurons", metavar="REF", help="neurons to train (default: MS(en) of an activation scan)")
    p.add_argument("--top-p", type=fraction, default=0.03, help="top-p of that scan (default 0.03)")
    add_training_args(p, steps=60)
    add_own_reply_args(p, own_tokens=64)
    p.add_argument("--opening-weight", type=non_negative_float, default=4.0,
                   help="loss weight of each reply's first 3 tokens, where refuse-or-answer is decided (default 4)")
    p.add_argument("--more-harmless", action="store_true",
                   help="train on assets/donors/train_en_more.jsonl too (80 more harmless requests)")
    p.set_defaults(run=cmd_train_donor)

    p = verbs.add_parser("train-chat", help="make a chat-following target from a base model by training random "
                         "neurons on a chat model's replies (seeded)")
    add_model_args(p)
    p.add_argument("--teacher", default="demo-target", help="the chat model whose replies are learned (default demo-target)")
    p.add_argument("--per-layer", type=positive_int, default=128, help="random MLP neurons trained in each layer (default 128)")
    add_training_args(p, steps=60)
    p.set_defaults(run=cmd_train_chat)

    p = verbs.add_parser("make-bias-donor", help="make a donor that prefers the stereotype less: the MLP neurons that "
                         "carry the model's stereotype preference on the bias scan items, turned down (no training, "
                         "no seed); writes a patch")
    add_model_args(p)
    p.add_argument("--langs", type=csv_list, default="en", help="bias items (scan split) the neurons are chosen on "
                                                                "(default en)")
    p.add_argument("--count", type=positive_int, default=BiasDonorConfig.count,
                   help=f"neurons turned down (default {BiasDonorConfig.count})")
    p.add_argument("--scale", type=damping, default=BiasDonorConfig.scale,
                   help=f"what each one's contribution is multiplied by (default {BiasDonorConfig.scale}; 0: off)")
    p.add_argument("--cost-quantile", type=fraction, help="only neurons whose effect on the loss of the bundled "
                   "benign English text is at most this quantile (e.g. 0.5: leave alone the half the model leans on most)")
    p.add_argument("--out", required=True, help="patch file to write (.safetensors)")
    p.set_defaults(run=cmd_make_bias_donor)

    p = verbs.add_parser("finetune", help="SS-Neuron Expansion: train only chosen neurons on a parallel "
                         "multilingual safety set (--function bias: to prefer neither fill of the bias items); "
                         "writes a patch")
    add_model_args(p)
    p.add_argument("--neurons", required=True, metavar="REF", help="neurons to train, e.g. DIR/neurons.json#ss")
    p.add_argument("--function", default="refusal", choices=("refusal", "bias"),
                   help="what is trained (default refusal: the safety set). bias: the squared stereotype preference "
                        "on the bundled bias scan items of --langs, with a KL term that keeps language modelling "
                        "(training.debias, --keep-weight); --replay-en, --validation, --max-false-refusal, --eval-every "
                        "and the own-reply options are refusal-only")
    p.add_argument("--langs", type=csv_list,
                   help="languages of the training set (default: refusal, the paper's NHR languages "
                        "zh,ko,th,bn,sw,ne; bias, en,fr,es)")
    p.add_argument("--keep-weight", type=non_negative_float, default=1.0,
                   help="bias: weight of the KL to the untrained model (default 1)")
    p.add_argument("--replay-en", action="store_true", help="train on the English examples too")
    p.add_argument("--validation", type=non_negative_int, default=8,
                   help="harmless scan prompts per language held out for early stopping (default 8; 0: none)")
    p.add_argument("--max-false-refusal", type=rate, default=0.15,
                   help="stop once held-out false refusals exceed this (or the starting rate, if higher); "
                        "keep the last weights within it (default 0.15)")
    p.add_argument("--eval-every", type=positive_int, default=10, help="steps between early-stopping checks (default 10)")
    p.add_argument("--limit", type=positive_int,
                   help="train on only the first N scan prompts of each label (bias: N items per language, spread "
                        "over the domains)")
    add_training_args(p, steps=40)
    add_own_reply_args(p, own_tokens=48)
    p.set_defaults(run=cmd_finetune)

    p = verbs.add_parser("ship", help="compute the results shipped for the built-in models (assets/results): "
                         "scans, suppression, transfer and curve experiments (seeded; hours on a CPU)")
    p.add_argument("--only", type=csv_list, metavar="NAME[,NAME]",
                   help="only these items: 'scans' (every scan), scan/MODEL/METHOD, or an experiment "
                        "(demo-donor-suppress, demo-transfer, demo-curve, gemma-donor-suppress)")
    p.add_argument("--out", help="folder to write (default: assets/results, where the app reads them)")
    p.set_defaults(run=cmd_ship)

    p = verbs.add_parser("bench", help="intervened vs plain wall-time ratios (lower is better)")
    add_model_args(p)
    p.add_argument("--repeats", type=positive_int, default=5, help="back-to-back pairs per figure (default 5)")
    p.add_argument("--new-tokens", type=positive_int, default=32)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb; bad flags exit 2 from argparse before anything loads, a user error returns 2, Ctrl-C 130."""
    try:
        args = build_parser().parse_args(argv)
        use_default_threads()
        args.run(args)
    except ValueError as e:  # NeuronLabError (every user-facing error) and bad values from the libraries below
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
