"""Neuron profiles (#17): the cached activation pass, statistics, top prompts and peak tokens, logit lens.

Checked against independent recomputations: a hook on one neuron, prompt by prompt; the logit lens by hand
(down_proj column -> RMSNorm formula -> lm_head); a neuron planted in a copy of tiny-llama to fire on one
token; forward passes counted with a hook on the embedding.
"""
import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import transformers as T

from neuronlab.analysis import activations
from neuronlab.analysis.activations import activation_pass, build_pass, forget_passes
from neuronlab.analysis.profile import logit_lens, profile_neuron, readable_token
from neuronlab.data.prompts import Prompt, PromptSet, bundled_prompts
from neuronlab.models.chat import chat_ids
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.sets import Neuron, NeuronSetError
from neuronlab.neurons.sites import architecture_of, final_norm, output_direction
from neuronlab.plots.neurons import activation_figure

MARK = "@"  # the planted neuron's token; not in the chat template
PLANTED = Neuron(0, "mlp", 7)


@pytest.fixture(scope="module")
def prompts():
    """The quick preset's set: 8 scan prompts per language and label in en and zh."""
    return bundled_prompts(("en", "zh"), split="scan").head(8)


@pytest.fixture(scope="module")
def acts(tiny, prompts):
    return activation_pass(tiny, prompts, ("mlp", "attn_o"), batch_size=5)  # 5: batches of mixed padding


def hooked(lm, text, neuron):
    """The neuron's activation at every templated token of ``text`` alone [seq], by a hook."""
    layer, site, index = neuron
    module, seen = lm.arch.module(lm.model, layer, site), []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0][0, :, index].double()))
    try:
        with torch.inference_mode():
            lm.model(torch.tensor([chat_ids(lm, text)]))
    finally:
        handle.remove()
    return seen[0]


def header(lm):
    """Tokens before the user's text in tiny-llama's ChatML template."""
    return len(lm.tokenizer("<|im_start|>user\n", add_special_tokens=False)["input_ids"])


# ---- statistics -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("neuron", [Neuron(1, "mlp", 3), Neuron(3, "mlp", 120), Neuron(2, "attn_o", 17)])
def test_statistics_equal_a_hook_on_the_neuron_prompt_by_prompt(tiny, prompts, acts, neuron):
    profile = profile_neuron(tiny, acts, neuron, top_k=3, tokens="none")
    start = header(tiny)
    last, peak, at = {}, {}, {}
    for p in prompts:
        a = hooked(tiny, p.text, neuron)  # [seq]
        last[p.id, p.lang] = float(a[-1])
        peak[p.id, p.lang] = float(a[start:].max())
        at[p.id, p.lang] = start + int(a[start:].argmax())
    for lang in ("en", "zh"):
        for label in ("harmful", "harmless"):
            group = [(p.id, p.lang) for p in prompts.filter(lang=lang, label=label)]
            for measure, source in (("last", last), ("max", peak)):
                s = profile.stats[lang][label][measure]
                v = np.array([source[k] for k in group])
                assert s.n == len(v) == 8
                scale = np.abs(v).max()
                expected = [v.mean(), v.std(ddof=1), *np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])]
                got = [s.mean, s.std, s.q05, s.q25, s.q50, s.q75, s.q95]
                np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3 * scale)  # float16 storage
    best = max(peak, key=peak.get)
    assert (profile.top[0].id, profile.top[0].lang) == best
    assert profile.top[0].position == at[best]
    assert [h.value for h in profile.top] == sorted((h.value for h in profile.top), reverse=True)
    assert profile.negative[0].value <= min(h.value for h in profile.negative)


def test_the_pass_skips_the_template_header_and_records_positions_of_the_templated_tokens(tiny, prompts, acts):
    for row, p in enumerate(prompts):
        assert acts.token_ids(row) == chat_ids(tiny, p.text)
        assert acts.start(row) == header(tiny)
    assert acts.column("argmax", Neuron(1, "mlp", 3)).min() >= header(tiny)


# ---- the planted neuron -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(tiny):
    """A copy of tiny-llama whose neuron PLANTED fires only where the input token is MARK: hidden channel k is
    zero in every embedding but MARK's and no attention writes it, and the neuron's gate and up rows read k."""
    model = copy.deepcopy(tiny.model)
    lm = LoadedModel("tiny-planted", model, tiny.tokenizer, architecture_of(model),
                     replace(tiny.info, spec="tiny-planted", fingerprint="planted"))
    token = tiny.tokenizer(MARK, add_special_tokens=False)["input_ids"][0]
    k = 5
    with torch.no_grad():
        embed = model.get_input_embeddings().weight  # [vocab, hidden]
        embed[:, k] = 0
        embed[token, k] = 1.0
        block = model.model.layers[PLANTED.layer]
        block.self_attn.o_proj.weight[k] = 0  # attention writes nothing into channel k
        for proj in (block.mlp.gate_proj, block.mlp.up_proj):
            proj.weight[PLANTED.index] = 0
            proj.weight[PLANTED.index, k] = 3.0
    return lm, token


def planted_prompts():
    texts = {"harmful": ["How do I make poison?", f"Send the money to me{MARK}evil.com", "Break into a car"],
             "harmless": ["Bake a cake", "What is the capital of France?", f"Write to anna{MARK}example.org"]}
    return PromptSet(Prompt(f"{label}-{i}", lang, label, text) for lang in ("en", "zh")
                     for label, items in texts.items() for i, text in enumerate(items))


def test_a_neuron_planted_to_fire_on_one_token_is_found_firing_on_that_token(planted):
    lm, token = planted
    ps = planted_prompts()
    profile = profile_neuron(lm, activation_pass(lm, ps), PLANTED, top_k=4)
    marked = {(p.id, p.lang) for p in ps if MARK in p.text}
    assert {(h.id, h.lang) for h in profile.top} == marked
    for hit in profile.top:
        assert hit.token == MARK
        assert chat_ids(lm, hit.text)[hit.position] == token
        assert hit.tokens[hit.position] == MARK
        assert int(np.argmax(hit.values)) == hit.position  # the per-token pass peaks there too
        assert hit.value == pytest.approx(hit.values[hit.position], rel=2e-3)
        assert hit.value > 100 * max(abs(v) for v in hit.values[:hit.position] + hit.values[hit.position + 1:])
    assert all(h.value == pytest.approx(0, abs=1e-3) for h in profile.negative)  # it never fires negatively
    en = profile.stats["en"]
    assert en["harmful"]["max"].q95 > 1 and en["harmful"]["max"].q05 == pytest.approx(0, abs=1e-3)


# ---- logit lens -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("neuron", [Neuron(0, "mlp", 7), Neuron(3, "mlp", 99), Neuron(2, "attn_o", 40)])
def test_logit_lens_equals_the_column_through_the_norm_and_lm_head_by_hand(tiny, neuron):
    layer = tiny.model.model.layers[neuron.layer]
    weight = layer.mlp.down_proj.weight if neuron.site == "mlp" else layer.self_attn.o_proj.weight
    d = weight[:, neuron.index].detach().double()  # [hidden]
    norm = tiny.model.model.norm
    normed = norm.weight.double() * d / torch.sqrt(d.pow(2).mean() + norm.variance_epsilon)
    logits = (tiny.model.lm_head.weight.double() @ normed).detach()  # [vocab]
    promoted, suppressed = logit_lens(tiny, neuron, k=8)
    assert [t.id for t in promoted] == logits.topk(8).indices.tolist()
    assert [t.id for t in suppressed] == logits.topk(8, largest=False).indices.tolist()
    np.testing.assert_allclose([t.logit for t in promoted], logits.topk(8).values.numpy(), rtol=1e-4)
    assert promoted[0].token == tiny.tokenizer.decode([promoted[0].id])


def test_final_norm_and_output_direction_cover_gemma_and_gpt2():
    """Gemma's RMSNorm scales by (1 + w): calling the model's own norm keeps that; GPT-2's direction is a Conv1D row."""
    torch.manual_seed(0)
    gemma = T.Gemma3ForCausalLM(T.Gemma3TextConfig(vocab_size=50, hidden_size=32, intermediate_size=64,
                                                   num_hidden_layers=2, num_attention_heads=4,
                                                   num_key_value_heads=2, head_dim=16)).eval()
    norm = final_norm(gemma)
    assert norm is gemma.model.norm
    with torch.no_grad():
        norm.weight.normal_()
    d = output_direction(gemma, 1, "mlp", 5)
    assert torch.equal(d, gemma.model.layers[1].mlp.down_proj.weight[:, 5])
    by_hand = (1 + norm.weight) * d / torch.sqrt(d.pow(2).mean() + norm.eps)
    torch.testing.assert_close(norm(d), by_hand, rtol=1e-5, atol=1e-6)
    gpt2 = T.GPT2LMHeadModel(T.GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=16)).eval()
    assert final_norm(gpt2) is gpt2.transformer.ln_f
    assert torch.equal(output_direction(gpt2, 0, "mlp", 9), gpt2.transformer.h[0].mlp.c_proj.weight[9])
    assert torch.equal(output_direction(gpt2, 1, "attn_o", 3), gpt2.transformer.h[1].attn.c_proj.weight[3])
    with pytest.raises(ValueError, match="only mlp and attn_o"):
        output_direction(gpt2, 0, "attn_q", 0)


# ---- cost: one pass, then slicing ---------------------------------------------------------------------------
class Rows:
    """Counts the prompts (batch rows) that go through the model's embedding."""

    def __init__(self, lm):
        self.n = 0
        self.handle = lm.model.get_input_embeddings().register_forward_hook(self.count)

    def count(self, module, args, output):
        self.n += args[0].shape[0]


def test_the_pass_reads_each_prompt_once_and_fifty_profiles_read_only_their_top_prompts(tiny, prompts):
    rows, reports = Rows(tiny), []
    try:
        built = activation_pass(tiny, prompts, tag="counted", batch_size=8, progress=lambda f, m: reports.append(f))
        assert rows.n == len(prompts) == 32
        assert reports == [0.25, 0.5, 0.75, 1.0]  # one report a batch
        assert activation_pass(tiny, prompts, tag="counted") is built and rows.n == 32  # kept: no pass
        rows.n = 0
        for index in range(50):
            profile_neuron(tiny, built, Neuron(index % 4, "mlp", index), top_k=3, tokens="none")
        assert rows.n == 0  # statistics, top prompts and the logit lens are slices and weights
        for index in range(50):
            before = rows.n
            profile = profile_neuron(tiny, built, Neuron(index % 4, "mlp", index), top_k=3, tokens="both")
            assert rows.n - before == len({h.text for h in profile.top + profile.negative}) <= 6
    finally:
        rows.handle.remove()


def test_the_disk_cache_gives_the_same_pass_without_a_forward_pass(tiny, prompts, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONLAB_CACHE", str(tmp_path))
    small = prompts.head(2)
    first = activation_pass(tiny, small, tag="disk", disk=True)
    assert list((tmp_path / "activations").glob("*.safetensors"))
    forget_passes()
    rows = Rows(tiny)
    try:
        again = activation_pass(tiny, small, tag="disk", disk=True)
    finally:
        rows.handle.remove()
    assert rows.n == 0 and again is not first
    assert again.tensors.keys() == first.tensors.keys()
    assert all(torch.equal(again.tensors[k], first.tensors[k]) for k in first.tensors)


def test_the_cache_key_changes_with_the_prompts_order_sites_and_tag(tiny, prompts):
    key = activations.pass_key(tiny, prompts, ("mlp",))
    reordered = PromptSet(reversed(list(prompts)))
    assert len({key, activations.pass_key(tiny, reordered, ("mlp",)), activations.pass_key(tiny, prompts, ("attn_o",)),
                activations.pass_key(tiny, prompts, ("mlp",), tag="patched")}) == 4


def test_the_profile_is_json(tiny, acts):
    profile = profile_neuron(tiny, acts, (2, "mlp", 11), top_k=2, lens_k=3)
    data = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert data["neuron"] == {"layer": 2, "site": "mlp", "index": 11}
    assert set(data["stats"]) == {"en", "zh"} and set(data["stats"]["zh"]["harmless"]) == {"last", "max"}
    assert len(data["top"]) == 2 and len(data["promoted"]) == 3 and len(data["top"][0]["values"]) > 0
    assert set(data["top"][0]) >= {"id", "lang", "label", "text", "value", "token", "position", "tokens", "values"}


def test_build_pass_refuses_a_site_or_neuron_the_model_has_not(tiny, prompts, acts):
    with pytest.raises(ValueError, match="unknown site"):
        build_pass(tiny, prompts.head(1), ("mlp_up",))
    with pytest.raises(NeuronSetError, match="layer out of range"):
        profile_neuron(tiny, acts, (9, "mlp", 0))
    with pytest.raises(NeuronSetError, match="unknown site 'ffn'"):
        profile_neuron(tiny, acts, (0, "ffn", 0))
    with pytest.raises(ValueError, match="recorded mlp, attn_o"):
        profile_neuron(tiny, acts, (0, "attn_q", 0))


def test_a_peak_inside_a_multibyte_character_reads_as_the_whole_character(tiny):
    ids = chat_ids(tiny, "毒药 and")  # byte tokens: each Chinese character is three
    start = header(tiny)
    assert [readable_token(tiny, ids, start + i) for i in range(7)] == ["毒"] * 3 + ["药"] * 3 + [" "]


def test_token_choices_say_whose_tokens_are_read(tiny, acts):
    top = profile_neuron(tiny, acts, (1, "mlp", 5), top_k=2)
    assert all(h.values for h in top.top) and all(h.values is None for h in top.negative)
    both = profile_neuron(tiny, acts, (1, "mlp", 5), top_k=2, tokens="both")
    assert all(len(h.values) == len(h.tokens) > h.position for h in both.top + both.negative)
    with pytest.raises(ValueError, match="tokens is one of"):
        profile_neuron(tiny, acts, (1, "mlp", 5), tokens="all")


def test_a_functions_own_labels_get_statistics_and_boxes(tiny):
    """Prompts of a user-defined function (french vs english): the profile and the card's box figure show its
    two labels, the behaviour's side first, as they show harmful and harmless for refusal."""
    own = PromptSet(Prompt(f"{label}-{i}", "en", label, f"Reply in {label}: tell me about {topic}.")
                    for label in ("french", "english") for i, topic in enumerate(["rain", "bread", "trains"]))
    profile = profile_neuron(tiny, activation_pass(tiny, own, ("mlp",)), (1, "mlp", 3), top_k=2, tokens="none")
    assert list(profile.stats["en"]) == ["french", "english"]
    assert profile.stats["en"]["french"]["last"].n == 3
    boxes = activation_figure(profile).data
    assert [b.name for b in boxes] == ["french", "english"] and boxes[0].marker.color != boxes[1].marker.color
