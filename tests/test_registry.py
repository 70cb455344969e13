"""ModelRegistry: one load per key, also when callers ask at once, and the least recently loaded dropped first."""
import threading
import time

import pytest

from neuronlab import ModelSpecError
from neuronlab.models.registry import ModelKey, ModelRegistry


class CountingLoader:
    """A stand-in for load_model that records its calls and returns a token per spec."""

    def __init__(self, delay: float = 0.0):
        self.calls: list[tuple] = []
        self.delay = delay

    def __call__(self, spec, dtype, device, trust_remote_code, progress):
        self.calls.append((spec, dtype, device, trust_remote_code))
        progress(1.0, f"loaded {spec}")
        time.sleep(self.delay)
        if spec == "bad":
            raise ModelSpecError("no such model")
        return f"model:{spec}:{dtype}"


def test_each_key_loads_once_and_the_same_model_is_returned():
    loader = CountingLoader()
    registry = ModelRegistry(loader=loader)
    first = registry.get(ModelKey("a"))
    assert registry.get(ModelKey("a")) is first
    other_dtype = registry.get(ModelKey("a", "bfloat16"))
    assert other_dtype is not first  # the dtype is part of the key
    assert loader.calls == [("a", "float32", "cpu", False), ("a", "bfloat16", "cpu", False)]


def test_the_load_reports_progress_and_errors_keep_nothing():
    registry = ModelRegistry(loader=CountingLoader())
    reports = []
    registry.get(ModelKey("a"), lambda fraction, message: reports.append(message))
    assert reports == ["loaded a"]
    with pytest.raises(ModelSpecError):
        registry.get(ModelKey("bad"))
    assert ModelKey("bad") not in registry and ModelKey("a") in registry


def test_the_oldest_model_is_dropped_beyond_the_size():
    loader = CountingLoader()
    registry = ModelRegistry(size=2, loader=loader)
    for spec in ("a", "b", "c"):
        registry.get(ModelKey(spec))
    assert ModelKey("a") not in registry and ModelKey("b") in registry and ModelKey("c") in registry
    registry.get(ModelKey("a"))  # loaded again, and now "b" is the oldest
    assert [call[0] for call in loader.calls] == ["a", "b", "c", "a"]
    assert ModelKey("b") not in registry


def test_callers_asking_at_once_share_one_load():
    loader = CountingLoader(delay=0.2)
    registry = ModelRegistry(loader=loader)
    got = []
    threads = [threading.Thread(target=lambda: got.append(registry.get(ModelKey("a")))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loader.calls) == 1 and len(got) == 4 and all(model is got[0] for model in got)
