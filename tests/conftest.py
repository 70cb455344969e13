"""Shared fixtures: models load once per test session (built-ins come from the local cache)."""
import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")

from neuronlab import load_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    """tiny-llama: 4 random layers, MLP width 128, byte tokenizer (shapes only)."""
    return load_model("tiny-llama")


@pytest.fixture(scope="session")
def smol():
    """demo-target: the real SmolLM2-135M-Instruct, where behaviour matters."""
    return load_model("demo-target")


@pytest.fixture(scope="session")
def gemma():
    """gemma3-270m: the real Gemma-3-270M base model."""
    return load_model("gemma3-270m")


@pytest.fixture(scope="session")
def donor():
    """demo-donor: demo-target with the shipped refusal patch (assets/donors/demo-donor.safetensors)."""
    return load_model("demo-donor")
