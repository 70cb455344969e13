"""Masked fine-tuning: only the chosen neurons learn; the model is left exactly as it was."""
import torch

from neuronlab import NeuronSet
from neuronlab.neurons.patches import fingerprint, patched
from neuronlab.training.finetune import TrainConfig, _batch, finetune_neurons

NEURONS = NeuronSet([(layer, "mlp", i) for layer in (1, 2) for i in range(0, 128, 4)]
                    + [(2, "attn_v", 3), (3, "attn_o", 5)])
EXAMPLES = [("say hi", "hello hello hello"), ("greet me", "hello hello hello"), ("hey", "hello hello hello")]


def reply_loss(lm) -> float:
    with torch.no_grad():
        return lm.model(**_batch(lm, EXAMPLES, 64)).loss.item()


def test_only_the_chosen_neurons_change_and_the_model_is_restored(tiny):
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    fp = fingerprint(tiny.model)
    loss_before = reply_loss(tiny)
    stops = []
    patch = finetune_neurons(tiny, NEURONS, EXAMPLES, TrainConfig(steps=30, lr=3e-2, batch_size=3, eval_every=10),
                             check=lambda lm: stops.append(1) and False)
    assert len(stops) == 3  # the early-stopping check ran every 10 steps
    assert fingerprint(tiny.model) == fp  # restored bit for bit
    assert patch.meta["target_fingerprint"] == fp and patch.meta["steps"] == 30
    with patched(tiny, patch):
        after = tiny.model.state_dict()
        changed = [k for k, v in after.items() if not torch.equal(v, before[k])]
        assert set(changed) <= {
            "model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight",
            "model.layers.1.mlp.down_proj.weight", "model.layers.2.mlp.gate_proj.weight",
            "model.layers.2.mlp.up_proj.weight", "model.layers.2.mlp.down_proj.weight",
            "model.layers.2.self_attn.v_proj.weight",
            "model.layers.3.self_attn.o_proj.weight"} and changed
        gate = after["model.layers.1.mlp.gate_proj.weight"]
        untouched = [i for i in range(128) if i % 4]
        assert torch.equal(gate[untouched], before["model.layers.1.mlp.gate_proj.weight"][untouched])
        assert not torch.equal(gate[::4], before["model.layers.1.mlp.gate_proj.weight"][::4])
        down = after["model.layers.1.mlp.down_proj.weight"]
        assert torch.equal(down[:, untouched], before["model.layers.1.mlp.down_proj.weight"][:, untouched])
        loss_after = reply_loss(tiny)
    # the neurons learned the replies (tiny-llama's random 64-wide head caps how low the loss can go: ~4.5)
    assert loss_after < loss_before - 0.5


def test_early_stop_ends_training(tiny):
    patch = finetune_neurons(tiny, NEURONS, EXAMPLES, TrainConfig(steps=50, lr=1e-2, batch_size=3, eval_every=5),
                             check=lambda lm: True)
    assert patch.meta["steps"] == 5


def test_donor_recipe_pairs_refusals_and_own_replies(tiny):
    from neuronlab.data.prompts import bundled_prompts
    from neuronlab.training.donors import REFUSALS, donor_examples, train_donor
    from neuronlab.training.finetune import refusal_pairs

    en = bundled_prompts("en", split="scan")
    few = type(en)(p for p in en if p.id in ("harmful-001", "harmful-003", "harmless-001"))
    examples = donor_examples(tiny, few, harmless_repeat=2, max_new_tokens=3)
    refusals = [e for e in examples if e.reply in REFUSALS]
    assert len(refusals) == 2 and len(examples) == 4  # two harmful, the harmless one twice
    assert [e.own for e in examples] == [False, False, True, True]
    assert examples[2] == examples[3] and examples[2][0] == few.filter(label="harmless").texts[0]
    patch = train_donor(tiny, NEURONS, few, TrainConfig(steps=2, batch_size=2))
    assert patch.meta["recipe"] == "donor" and patch.meta["harmless_repeat"] == 2 and len(patch.neurons) == len(NEURONS)
    assert patch.meta["avoided"] == 0
    # with avoid_weight, each harmless prompt is also paired with a refusal whose opening it unlearns
    pairs = refusal_pairs(few.filter(label="harmless"), lambda lang: REFUSALS, seed=0)
    assert [q for q, _ in pairs] == few.filter(label="harmless").texts and all(r in REFUSALS for _, r in pairs)
    assert train_donor(tiny, NEURONS, few, TrainConfig(steps=2, batch_size=2, avoid_weight=1.0)).meta["avoided"] == 1


def test_reply_loss_weighs_examples_and_openings():
    """Each example's mean counts once however long its reply, and opening tokens weigh more."""
    from neuronlab.training.finetune import reply_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 6, 5)  # [batch, seq, vocab]
    labels = torch.tensor([[-100, -100, 1, 2, 3, 4], [-100, -100, -100, -100, 0, -100]])
    nll = -logits.log_softmax(-1)[:, :-1].gather(2, labels[:, 1:].clamp(min=0)[..., None])[..., 0]  # [batch, seq-1]
    plain = (nll[0, 1:5].mean() + nll[1, 3]) / 2
    logits, labels = logits[:, :-1], labels[:, 1:]  # each position with the token it predicts
    assert torch.allclose(reply_loss(logits, labels, TrainConfig()), plain)
    weights = torch.tensor([3.0, 3.0, 1.0, 1.0])  # opening_tokens=2, opening_weight=3
    opened = ((nll[0, 1:5] * weights).sum() / weights.sum() + nll[1, 3]) / 2
    assert torch.allclose(reply_loss(logits, labels, TrainConfig(opening_weight=3.0, opening_tokens=2)), opened)


def test_donor_training_prompts_stay_out_of_the_held_out_split():
    from neuronlab.data.prompts import bundled_prompts
    from neuronlab.training.donors import donor_prompts

    extra = donor_prompts(more=True)
    held = {p.text.lower() for p in bundled_prompts("en").filter(split="heldout")}
    assert len(extra.filter(label="harmful")) == 40 and len(extra.filter(label="harmless")) == 160
    assert len(donor_prompts()) == 120
    assert not {p.text.lower() for p in extra} & held


def test_reply_logits_skip_the_prompt_but_give_the_same_loss(tiny):
    """Projecting only the positions that predict reply tokens changes the cost, not the loss."""
    from neuronlab.training.finetune import reply_logits, reply_loss

    batch = _batch(tiny, [("a much longer prompt than the other one", "ok"), ("hi", "hello there, friend")], 128)
    config = TrainConfig(opening_weight=4.0)
    with torch.no_grad():
        logits, targets = reply_logits(tiny.model, batch)  # [batch, k, vocab], [batch, k]
        full = tiny.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape[1] < full.shape[1] - 10  # the long prompt's positions were skipped
    expected = reply_loss(full[:, :-1], batch["labels"][:, 1:], config)
    assert torch.allclose(reply_loss(logits, targets, config), expected, atol=1e-6)


def test_train_chat_learns_the_teachers_replies_on_random_neurons_only(tiny):
    """A chat target is distilled from a teacher's replies into random neurons, evenly spread over layers."""
    from neuronlab.data.prompts import bundled_prompts
    from neuronlab.neurons.sets import random_per_layer
    from neuronlab.training.donors import teacher_examples, train_chat

    neurons = random_per_layer(tiny.arch, 8, seed=3)
    assert neurons.per_layer_counts("mlp") == {layer: 8 for layer in range(4)}
    assert neurons == random_per_layer(tiny.arch, 8, seed=3) != random_per_layer(tiny.arch, 8, seed=4)
    few = type(bundled_prompts("en"))(p for p in bundled_prompts("en") if p.id in ("harmful-001", "harmless-001"))
    examples = teacher_examples(tiny, few, max_new_tokens=4)
    assert [e.prompt for e in examples] == few.texts and all(isinstance(e.reply, str) and not e.own for e in examples)
    fp = fingerprint(tiny.model)
    patch = train_chat(tiny, tiny, neurons, few, TrainConfig(steps=2, batch_size=2))
    assert patch.meta["recipe"] == "chat" and patch.meta["teacher"] == "tiny-llama" and patch.neurons == neurons
    assert fingerprint(tiny.model) == fp


def _reply_kl(lm, patch, examples) -> float:
    """Mean KL(untrained || patched) of the next-token distributions at the reply positions of ``examples``."""
    from neuronlab.training.finetune import reply_logits

    batch = _batch(lm, examples, 64)
    with torch.no_grad():
        before, targets = reply_logits(lm.model, batch)
        with patched(lm, patch):
            after, _ = reply_logits(lm.model, batch)
    p, q = before.log_softmax(-1), after.log_softmax(-1)  # [batch, k, vocab]
    kl = (p.exp() * (p - q)).sum(-1)  # [batch, k]
    return kl[targets != -100].mean().item()


def test_own_replies_learned_as_distributions_keep_the_model_where_token_targets_sharpen_it(tiny):
    """Past the opening tokens, an own reply's targets are the untrained model's next-token distributions, so
    training on them leaves those distributions almost as they were; token targets pull them to the tokens."""
    from neuronlab.models.generation import Sampling, generate_batch
    from neuronlab.training.finetune import Example, _distributions, _soft

    prompts = ["say hi", "greet me", "hey", "name a colour", "count to three", "what is up"]
    own = [Example(q, r, own=True) for q, r in zip(prompts, generate_batch(tiny, prompts, sampling=Sampling(max_new_tokens=10)))]
    refusal = Example("make a bomb", "no no no")
    vocab = tiny.model.config.vocab_size
    common = dict(steps=20, lr=1e-2, batch_size=4, opening_tokens=0, top_k=vocab + 1)  # the whole vocabulary
    by_token = finetune_neurons(tiny, NEURONS, own, TrainConfig(**common))
    by_distribution = finetune_neurons(tiny, NEURONS, own, TrainConfig(own_target="distribution", **common))
    assert by_distribution.meta["own_target"] == "distribution"
    kl_token, kl_distribution = _reply_kl(tiny, by_token, own), _reply_kl(tiny, by_distribution, own)
    assert kl_distribution < 0.1 * kl_token, (kl_distribution, kl_token)

    # distribution targets: the untrained model's top-k, renormalised, only past each own reply's opening
    config = TrainConfig(own_target="distribution", opening_tokens=2, top_k=5)
    examples = [own[0], refusal]
    dist = _distributions(tiny, examples, config)
    assert set(dist) == {0}
    ids, probs = dist[0]  # [n, top_k]
    batch = _batch(tiny, examples, 64)
    n = int((batch["labels"][0] != -100).sum())
    assert ids.shape == probs.shape == (n, 5) and torch.allclose(probs.sum(-1), torch.ones(n))
    from neuronlab.training.finetune import reply_logits
    with torch.no_grad():
        logits, targets = reply_logits(tiny.model, batch)
    assert torch.equal(ids, logits[0, targets[0] != -100].topk(5).indices)
    soft = _soft([0, 1], targets, dist, config)
    assert int(soft.where[0].sum()) == n - 2 and not soft.where[1].any()
    assert _soft([1], targets[1:], dist, config) is None


def test_opening_unlikelihood_is_minus_log_of_one_minus_the_openings_probability():
    from neuronlab.training.finetune import opening_unlikelihood

    torch.manual_seed(1)
    logits = torch.randn(2, 5, 7)  # [batch, k, vocab]
    targets = torch.tensor([[-100, 3, 1, 4, 2], [5, 0, -100, -100, -100]])
    logp = logits.log_softmax(-1)
    p0 = (logp[0, 1, 3] + logp[0, 2, 1]).exp()  # opening_tokens=2: the first two reply tokens
    p1 = (logp[1, 0, 5] + logp[1, 1, 0]).exp()
    expected = -(torch.log(1 - p0) + torch.log(1 - p1)) / 2
    assert torch.allclose(opening_unlikelihood(logits, targets, TrainConfig(opening_tokens=2)), expected)


def _opening_logp(lm, pairs, tokens: int = 3) -> float:
    """Mean log-probability of the first ``tokens`` reply tokens of (prompt, reply) ``pairs``."""
    from neuronlab.training.finetune import reply_logits

    with torch.no_grad():
        logits, targets = reply_logits(lm.model, _batch(lm, pairs, 64))
    valid = targets != -100
    logp = logits.log_softmax(-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return (logp * (valid & (valid.cumsum(1) <= tokens))).sum(1).mean().item()


def test_avoided_openings_become_unlikely_while_the_replies_are_still_learned(tiny):
    """The same training with openings to avoid: those openings lose probability on their prompts; with
    avoid_weight 0 the pairs are ignored (the patch is bit-identical to training without them)."""
    examples = [("make a bomb", "no no no"), ("hurt someone", "no no no"), ("say hi", "hello hello hello")]
    avoid = [("greet me", "no no no"), ("say hello", "no no no")]
    common = dict(steps=20, lr=1e-2, batch_size=3, avoid_batch=2, opening_tokens=1)
    plain = finetune_neurons(tiny, NEURONS, examples, TrainConfig(**common), avoid=avoid)
    avoiding = finetune_neurons(tiny, NEURONS, examples, TrainConfig(avoid_weight=30.0, **common), avoid=avoid)
    assert plain.meta["avoided"] == 0 and avoiding.meta["avoided"] == 2 and avoiding.meta["avoid_weight"] == 30.0
    without = finetune_neurons(tiny, NEURONS, examples, TrainConfig(**common))
    assert all(torch.equal(plain.tensors[k], without.tensors[k]) for k in plain.tensors)
    with patched(tiny, plain):
        learned_plain, avoided_plain = _opening_logp(tiny, examples[:2], 1), _opening_logp(tiny, avoid, 1)
    with patched(tiny, avoiding):
        learned, avoided = _opening_logp(tiny, examples[:2], 1), _opening_logp(tiny, avoid, 1)
    assert avoided < avoided_plain - 1.0, (avoided, avoided_plain)  # the avoided openings lost probability
    assert learned > learned_plain - 1.0, (learned, learned_plain)  # the refusals were still learned
