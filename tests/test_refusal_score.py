"""``refusal_score`` (each context read once, its KV cache shared by the refusal openings) against the
straightforward computation: every context + opening read whole, one row at a time, no padding, with the
same interventions on. On tiny-llama, demo-target (SmolLM2), Gemma-3-270M and tiny random models of the
other families (GPT-2's learned positions, sliding windows shorter than the contexts)."""
import math

import pytest
import torch
import transformers as T

from neuronlab import Intervention, NeuronSet, intervene, load_model
from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.metrics import refusal_openings, refusal_score
from neuronlab.models.chat import chat_ids, text_ids
from neuronlab.models.tiny import byte_tokenizer

TOL = 1e-4  # absolute, in log-probability


def reference_score(lm, prompt: str, lang: str, interventions=()) -> float:
    """log Σ over the openings of p(opening | chat context), each pair in its own unpadded forward pass."""
    context, logps = chat_ids(lm, prompt), []
    with intervene(lm.model, list(interventions)), torch.inference_mode():
        for opening in refusal_openings(lang):
            tail = text_ids(lm, opening)
            ids = torch.tensor([context + tail], device=lm.device)
            logp = lm.model(input_ids=ids).logits[0].float().log_softmax(-1)  # [seq, vocab]
            logps.append(sum(logp[len(context) - 1 + i, t].item() for i, t in enumerate(tail)))
    return torch.tensor(logps).logsumexp(-1).item()


def assert_matches(lm, prompts, lang, interventions=(), batch_size=8):
    got = refusal_score(lm, prompts, lang, interventions, batch_size)
    want = [reference_score(lm, p, lang, interventions) for p in prompts]
    assert got.shape == (len(prompts),)
    for p, g, w in zip(prompts, got.tolist(), want):
        assert math.isclose(g, w, abs_tol=TOL), f"{lang} {p[:30]!r}: {g} vs {w}"
    return got


def _prompts(lang: str, n: int) -> list[str]:
    """``n`` prompts of different lengths (harmful and harmless), so that batches are left-padded."""
    ps = bundled_prompts(lang, split="heldout")
    half = (n + 1) // 2
    return ps.filter(label="harmful").texts[:half] + ps.filter(label="harmless").texts[:n - half]


def _on(layer: int, mode: str = "activate") -> list[Intervention]:
    value = 3.0 if mode == "activate" else None
    return [Intervention(NeuronSet.from_indices(layer, "mlp", range(0, 64, 3)), mode, value)]


@pytest.mark.parametrize("lang", ["en", "zh", "ko"])
def test_tiny_matches_one_row_at_a_time(tiny, lang):
    prompts = _prompts(lang, 5)
    plain = assert_matches(tiny, prompts, lang, batch_size=2)  # several batches, the last one short
    moved = assert_matches(tiny, prompts, lang, _on(1), batch_size=2)
    assert not torch.allclose(plain, moved)  # the intervention acts (on the opening tokens too)


def test_no_prompts_no_scores(tiny):
    assert refusal_score(tiny, [], "en").shape == (0,)


def test_smol_matches_one_row_at_a_time(smol):
    prompts = _prompts("en", 3)
    plain = assert_matches(smol, prompts, "en")
    moved = assert_matches(smol, prompts, "en", _on(20, "suppress") + _on(25))
    assert not torch.allclose(plain, moved)
    assert_matches(smol, _prompts("zh", 2), "zh", _on(20))


def test_gemma_matches_one_row_at_a_time(gemma):
    """Gemma-3: sliding-window layers beside global ones, a 262k vocabulary."""
    prompts = _prompts("en", 2)
    plain = assert_matches(gemma, prompts, "en")
    moved = assert_matches(gemma, prompts, "en", _on(10, "suppress") + _on(12))
    assert not torch.allclose(plain, moved)


def _llama_kw(**extra):
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=512, **extra)


FAMILIES = {  # sliding windows of 5 tokens: far shorter than any chat context here
    "gpt2": (T.GPT2Config, T.GPT2LMHeadModel, dict(n_embd=32, n_inner=64, n_layer=2, n_head=4, n_positions=512)),
    "gemma3-sliding": (T.Gemma3TextConfig, T.Gemma3ForCausalLM,
                       _llama_kw(head_dim=16, sliding_window=5, layer_types=["sliding_attention", "full_attention"])),
    "mistral-sliding": (T.MistralConfig, T.MistralForCausalLM, _llama_kw(sliding_window=5)),
    "phi3": (T.Phi3Config, T.Phi3ForCausalLM, _llama_kw()),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    """A tiny random model of the family, saved with the byte tokenizer (chat template) and loaded back."""
    config_cls, model_cls, kwargs = FAMILIES[request.param]
    tok = byte_tokenizer()
    config = config_cls(vocab_size=len(tok), initializer_range=0.2, bos_token_id=None,
                        eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        built = model_cls(config).eval()
    folder = tmp_path_factory.mktemp(request.param)
    built.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return load_model(str(folder))


def test_every_family_matches_one_row_at_a_time(family):
    prompts = _prompts("en", 3)
    plain = assert_matches(family, prompts, "en", batch_size=2)
    on = [Intervention(NeuronSet.from_indices(1, "mlp", range(0, 64, 2)), "activate", 4.0)]
    assert not torch.allclose(plain, assert_matches(family, prompts, "en", on, batch_size=2))
