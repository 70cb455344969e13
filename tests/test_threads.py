"""The thread count the app and the CLI give torch."""
import pytest
import torch

from neuronlab.threads import ENV, default_threads, use_default_threads


def test_half_the_cpus_and_at_least_one(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    for cpus, threads in [(1, 1), (2, 1), (3, 1), (8, 4), (None, 1)]:
        monkeypatch.setattr("os.cpu_count", lambda cpus=cpus: cpus)
        assert default_threads() == threads


def test_the_environment_chooses(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv(ENV, "3")
    try:
        assert use_default_threads() == 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(ValueError, match=ENV):
            default_threads()
