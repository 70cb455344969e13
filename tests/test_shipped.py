"""Shipped results: the ship command writes them, scans and experiments read them back only when they fit."""
import json
import shutil

import pytest
import torch
from safetensors.torch import safe_open, save_file

from neuronlab import NeuronSet, ship
from neuronlab.analysis import scan
from neuronlab.analysis.scan import run_scan, select_sets
from neuronlab.analysis.scoring import activation_scores
from neuronlab.cli import main
from neuronlab.data import shipped
from neuronlab.data.prompts import bundled_prompts
from neuronlab.transfer.curve import CurvePoint, Measure, SearchResult, curve_frame

TINY = shipped.Standard("tiny-suppress", "effects", {"model": "tiny-llama"},
                        {**shipped.EXPERIMENTS["demo-donor-suppress"].settings, "limit": 2, "max_new_tokens": 3,
                         "seeds": 1})


@pytest.fixture(scope="module")
def made(tiny, tmp_path_factory):
    """A ship run for tiny-llama (English activation scan, one small suppression experiment) into a
    temporary folder, with a temporary user cache."""
    root = tmp_path_factory.mktemp("ship")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEURONLAB_CACHE", str(root / "cache"))
        mp.setattr(shipped, "SCAN_MODELS", ("tiny-llama",))
        mp.setattr(shipped, "SCAN_METHODS", ("activation",))
        mp.setattr(shipped, "SCAN_LANGS", ("en",))
        mp.setattr(shipped, "EXPERIMENTS", {TINY.name: TINY})
        manifest = ship.ship(None, root / "results", load=lambda spec: tiny, log=lambda line: None)
    return root / "results", manifest


@pytest.fixture
def results(made, tmp_path, monkeypatch):
    """A private copy of the shipped folder, read by ``shipped``; an empty user cache."""
    folder = tmp_path / "results"
    shutil.copytree(made[0], folder)
    monkeypatch.setattr(shipped, "RESULTS_DIR", folder)
    monkeypatch.setattr(shipped, "EXPERIMENTS", {TINY.name: TINY})
    monkeypatch.setenv("NEURONLAB_CACHE", str(tmp_path / "cache"))
    return folder


@pytest.fixture
def scorer_calls(monkeypatch):
    """How often a scan scores prompts with the model."""
    calls = []
    real = scan._score

    def counted(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)
    monkeypatch.setattr(scan, "_score", counted)
    return calls


def en_scan(lm, **kwargs):
    return run_scan(lm, bundled_prompts("en"), ["en"], "activation", **kwargs)


def test_ship_writes_parts_experiments_manifest_and_readme(made, tiny):
    folder, manifest = made
    parts = sorted((folder / "scans").glob("*.safetensors"))
    assert len(parts) == 2  # en harmful, en harmless
    with safe_open(str(parts[0]), "pt") as f:
        meta = f.metadata()
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert meta["fingerprint"] == tiny.info.fingerprint and meta["method"] == "activation"
    assert json.loads(meta["n_prompts"]) == 60 and json.loads(meta["settings"])["split"] == "scan"
    for rel, entry in manifest["files"].items():
        assert (folder / rel).stat().st_size == entry["bytes"]
        assert entry["sha256"] == ship._sha256(folder / rel)
    assert set(manifest["items"]) == {"scan/tiny-llama/activation", TINY.name}
    assert "tiny-suppress" in (folder / "README.md").read_text()
    assert not list(folder.rglob(".*.tmp"))


def test_a_scan_reads_shipped_parts_without_the_model(results, tiny, scorer_calls):
    got = en_scan(tiny)
    assert (got.shipped, got.cache_hits, scorer_calls) == (2, 0, [])
    fresh = en_scan(tiny, use_cache=False)
    assert len(scorer_calls) == 2
    for label in ("harmful", "harmless"):
        a, b = got.importance["en"][label]["mlp"], fresh.importance["en"][label]["mlp"]
        assert a.dtype == torch.float32 and torch.equal(a, b.half().float())  # the fresh scores, rounded
    # contrast = mean harmful - mean harmless: each mean rounded within 2^-11 of itself (|mean| <= importance)
    bound = 2 ** -11 * (fresh.importance["en"]["harmful"]["mlp"] + fresh.importance["en"]["harmless"]["mlp"]) + 1e-7
    assert ((got.contrast["en"]["mlp"] - fresh.contrast["en"]["mlp"]).abs() <= bound).all()


def _truncate(path):
    path.write_bytes(path.read_bytes()[:300])


def _restamp(**changes):
    def spoil(path):
        with safe_open(str(path), "pt") as f:
            meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
        if "nan" in changes:
            next(iter(tensors.values()))[3, 5] = float("nan")
        save_file(tensors, str(path), metadata={**meta, **{k: v for k, v in changes.items() if k != "nan"}})
    return spoil


@pytest.mark.parametrize("spoil", [_truncate, _restamp(fingerprint="0123456789abcdef"), _restamp(nan=True),
                                   _restamp(label="harmless"), _restamp(format="neuronlab.shipped-scan/0")],
                         ids=["truncated", "other-fingerprint", "nan", "other-part", "other-format"])
def test_a_spoilt_shipped_part_is_ignored_with_a_warning_and_recomputed(results, tiny, scorer_calls, spoil):
    fresh = en_scan(tiny, use_cache=False)
    harmful = next(p for p in (results / "scans").glob("*.safetensors")
                   if safe_open(str(p), "pt").metadata()["label"] == "harmful")
    spoil(harmful)
    scorer_calls.clear()
    with pytest.warns(UserWarning, match=harmful.name):
        got = en_scan(tiny)
    assert (got.shipped, len(scorer_calls)) == (1, 1)
    assert torch.equal(got.importance["en"]["harmful"]["mlp"], fresh.importance["en"]["harmful"]["mlp"])


def test_shipped_parts_fit_only_their_own_key(results, tiny, scorer_calls):
    """Other prompts or settings give other keys: computed, never read from a shipped part."""
    got = run_scan(tiny, bundled_prompts("en"), ["en"], "activation", batch_size=4)
    assert got.shipped == 0 and len(scorer_calls) == 2


def test_experiment_needs_its_models_settings_and_format(results, tiny):
    fp = tiny.info.fingerprint
    doc = shipped.experiment(TINY.name, model=fp)
    assert doc["settings"] == TINY.settings and doc["models"]["model"]["spec"] == "tiny-llama"
    assert doc["made_by"] == f"python -m neuronlab ship --only {TINY.name}"
    assert shipped.experiment(TINY.name, model="0123456789abcdef") is None
    assert shipped.experiment(TINY.name, donor=fp) is None  # no such role
    assert shipped.experiment("no-such-experiment") is None

    path = shipped.experiment_path(TINY.name)
    path.write_text(json.dumps({**doc, "settings": {**TINY.settings, "max_new_tokens": 64}}))
    assert shipped.experiment(TINY.name, model=fp) is None  # stale settings
    path.write_text(json.dumps({**doc, "format": "neuronlab.shipped/0"}))
    with pytest.warns(UserWarning, match="not a neuronlab.shipped/1"):
        assert shipped.experiment(TINY.name, model=fp) is None
    path.write_text(json.dumps(doc)[:500])
    with pytest.warns(UserWarning, match=path.name):
        assert shipped.experiment(TINY.name, model=fp) is None


def test_suppress_experiment_keeps_its_set_and_paired_replies(results, tiny):
    result = shipped.experiment(TINY.name)["result"]
    neurons = NeuronSet.from_json(result["neurons"])
    assert neurons == select_sets(en_scan(tiny), 0.08).ms["en"] and len(neurons) > 0
    assert result["evaluation"]["effects"][0]["neurons"] == len(neurons)
    assert {r["label"] for r in result["replies"]} == {"harmful", "harmless"}
    assert len(result["replies"]) == 4  # 2 + 2 held-out prompts, each before and after
    assert all(set(r["before"]) == set(r["after"]) == {"reply", "refusal", "reply_lang"} for r in result["replies"])


def test_a_saved_curve_gives_back_its_frame():
    base = Measure(0.0, 0.05, -9.0, -9.5, 20.0)
    result = SearchResult("add", 0.7, 0.01, 0.1, 0.1, base, [
        CurvePoint(8, 1e-4, Measure(0.3, 0.05, -3.0, -8.0, 20.1), (base, Measure(0.0, 0.1, -8.0, -9.0, 20.3)), False),
        CurvePoint(16, 2e-4, Measure(0.8, 0.05, -1.0, -8.0, 20.1), (base, base), True)])
    saved = json.loads(json.dumps(result.to_dict()))
    assert curve_frame(saved).equals(result.to_frame())


def test_ship_rejects_unknown_items():
    assert main(["ship", "--only", "scan/demo-target/ablation"]) == 2


@pytest.fixture
def donor_scan(donor, tmp_path, monkeypatch):
    """demo-donor's English activation scan as the committed results give it (empty user cache)."""
    monkeypatch.setenv("NEURONLAB_CACHE", str(tmp_path / "empty"))
    return en_scan(donor)


def test_shipped_demo_donor_scan_equals_a_fresh_one(donor, donor_scan):
    assert donor_scan.shipped == 2
    harmful = bundled_prompts("en", split="scan").filter(label="harmful").texts
    fresh = activation_scores(donor, harmful, ("mlp",), 8)["mlp"]["mean_abs"]  # [30, 1536]
    assert torch.allclose(donor_scan.importance["en"]["harmful"]["mlp"], fresh, rtol=1e-3, atol=1e-6)


def test_shipped_demo_donor_suppress_set_is_ms_en_of_the_shipped_scan(donor, donor_scan):
    doc = shipped.experiment("demo-donor-suppress", model=donor.info.fingerprint)
    assert doc is not None, "assets/results/experiments/demo-donor-suppress.json is missing or stale"
    assert NeuronSet.from_json(doc["result"]["neurons"]) == select_sets(donor_scan, 0.08).ms["en"]
