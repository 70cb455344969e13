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


# ---- markers (registered in pyproject.toml); the quick run: pytest -m "not real_model and not browser and not app"
REAL_MODEL_FIXTURES = {"smol", "gemma", "donor"}  # the fixtures above that load a real built-in model
APP_MODULES = {"test_app", "test_progress_app"}  # AppTest: the Streamlit app in-process
BROWSER_MODULES = {"test_browser"}  # headless Chromium against a running app


def pytest_collection_modifyitems(config, items):
    """Mark ``real_model`` every test that uses a real-model fixture, ``app`` every test of a module that drives
    the app through AppTest (named above, or importing AppTest or the AppTest helpers of tests/support) and ``browser`` the browser tests, so
    new tests get their marks without a decorator. A test that loads a real model another way (a built-in name
    given to ``load_model`` or to the CLI) carries ``@pytest.mark.real_model`` itself."""
    for item in items:
        module = getattr(item, "module", None)
        name = module.__name__.rpartition(".")[2] if module else ""
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_model)
        drives_app = module is not None and (hasattr(module, "AppTest") or any(
            getattr(v, "__module__", "") == "tests.support.apptest" for v in vars(module).values()))
        if name in APP_MODULES or drives_app:
            item.add_marker(pytest.mark.app)
        if name in BROWSER_MODULES:
            item.add_marker(pytest.mark.browser)
