"""Generation on the real built-in models, and the benchmark's report shape."""
from neuronlab.bench import run_bench
from neuronlab.models.chat import plain_chat
from neuronlab.models.generation import Sampling, generate, stream


def test_gemma_loads_and_answers_in_the_plain_frame(gemma):
    assert gemma.info.n_layers == 18 and gemma.info.neurons_per_layer["mlp"] == 2048
    assert not gemma.info.chat_template
    reply = generate(gemma, "What is the capital of France?", sampling=Sampling(max_new_tokens=24))
    assert "Paris" in reply and "User:" not in reply


def test_plain_frame_for_models_without_a_template():
    text = plain_chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                       {"role": "user", "content": "bye"}])
    assert text == "User: hi\nAssistant: hello\nUser: bye\nAssistant:"


def test_sampling_is_reproducible_with_a_seed(smol):
    settings = Sampling(max_new_tokens=16, do_sample=True, temperature=1.0, seed=7)
    first = generate(smol, "Invent a name for a cat.", sampling=settings)
    assert generate(smol, "Invent a name for a cat.", sampling=settings) == first
    assert "".join(stream(smol, "Invent a name for a cat.", sampling=settings)).strip() == first


def test_bench_reports_ratios_with_absolute_times(tiny):
    result = run_bench(tiny, repeats=1, new_tokens=4)
    for kind, hooked in (("forward", "intervened_s"), ("generate", "intervened_s"), ("scan", "scan_s")):
        times = result[kind]
        assert times["plain_s"] > 0 and times[hooked] > 0
        assert result[f"{kind}_ratio"] > 0  # repeats=1: the single pair's ratio
        assert abs(result[f"{kind}_ratio"] - times[hooked] / times["plain_s"]) < 1e-9
    assert result["scan"]["prompts"] == 32
    assert result["intervention"]["layers"] == 4 and result["intervention"]["neurons"] == 4 * 4
    assert result["model"] == "tiny-llama" and result["device"] == "cpu"
