"""Progress of long jobs: one monotone overall fraction, plain-language labels, elapsed time and time left,
partial results for stopped jobs, and the presets' work sizes and timed costs."""
import io

import pytest
import torch

from neuronlab import NeuronSet
from neuronlab.analysis.scan import run_scan
from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.effects import Effect, evaluate_effects
from neuronlab.evaluation.metrics import evaluate
from neuronlab.presets import PRESETS, ScanSize, evaluation_size, measure_costs, scan_work
from neuronlab.progress import Status, Tracker, Work, about, duration, shares, span, text_bar
from neuronlab.transfer.curve import minimal_subset
from neuronlab.transfer.ranking import random_scores

INTERNAL = ("destination", "activations:", "attribution:", "ablation:", "causal:", "setting up", "control seed",
            "baseline", "effect:", "replies:", "utility:")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A Progress callback that keeps every (fraction, message)."""

    def __init__(self):
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, message: str) -> None:
        self.calls.append((fraction, message))

    def check(self) -> None:
        """Non-decreasing fractions ending at 1.0, and no internal words in the labels."""
        fractions = [f for f, _ in self.calls]
        assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
        assert all(0.0 <= f <= 1.0 for f in fractions)
        leaks = [m for _, m in self.calls for word in INTERNAL if word in m.lower()]
        assert not leaks, leaks


def test_tracker_estimates_the_time_left_of_linear_work_across_phases():
    clock, seen = Clock(), []
    tracker = Tracker(seen.append, clock)
    first, second = span(tracker, 0.0, 0.4, "Phase one: "), span(tracker, 0.4, 1.0, "Phase two: ")
    clock.now += 1
    first(0.1, "a")  # 4% of the job: too early to estimate
    assert seen[-1].fraction == pytest.approx(0.04) and seen[-1].remaining is None
    clock.now += 9  # 10 s for 40%: 15 s left at the same pace
    first(1.0, "b")
    assert seen[-1].elapsed == pytest.approx(10) and seen[-1].remaining == pytest.approx(15)
    clock.now += 5
    second(0.0, "c")  # a new phase starts where the last one ended: never back to 0
    assert seen[-1].fraction == pytest.approx(0.4) and seen[-1].message == "Phase two: c"
    clock.now += 5
    second(0.5, "d")  # 70% in 20 s
    assert seen[-1].remaining == pytest.approx(20 * 0.3 / 0.7)
    tracker(0.2, "a late report of an earlier part")
    assert seen[-1].fraction == pytest.approx(0.7)
    clock.now += 3
    tracker(1.0, "done")
    assert seen[-1].remaining == pytest.approx(0.0) and tracker.elapsed == pytest.approx(23)


def test_status_line_and_durations():
    line = Status(0.42, "Scanning English harmful prompts (1/4)", 12.0, 16.4).line()
    assert line == "Scanning English harmful prompts (1/4) · 42% · 12 s elapsed · about 15 s left"
    assert "left" not in Status(0.02, "Starting", 1.0, None).line()
    assert [duration(s) for s in (8.4, 125, 3780)] == ["8 s", "2 min 05 s", "1 h 03 min"]
    assert [about(s) for s in (4, 22, 300)] == ["a few seconds", "about 20 s", "about 5 min"]


def test_text_bar_shows_elapsed_time_and_time_left():
    clock, out = Clock(), io.StringIO()
    bar = text_bar(out, width=10, clock=clock)
    clock.now += 6
    bar(0.5, "Writing replies")
    assert "[#####.....] Writing replies · 50% · 6 s elapsed · a few seconds left" in out.getvalue()
    bar(1.0, "Done")
    assert out.getvalue().endswith("\n")


def test_phase_shares_follow_the_work():
    parts = [Work(prompts=2), Work(new_tokens=15), Work(text_tokens=0)]  # 90, 180 and 0 units
    assert shares(parts) == pytest.approx([1 / 3, 1.0, 1.0])
    assert (Work(1, 2, 3) + Work(1, 0, 1)) * 2 == Work(4, 4, 8)


def test_scan_reports_one_overall_fraction_and_keeps_each_finished_language(tiny):
    prompts = bundled_prompts(["en", "zh"]).head(2)
    rec, partial = Recorder(), []
    result = run_scan(tiny, prompts, ["en", "zh"], use_cache=False, progress=rec, on_language=partial.append)
    rec.check()
    assert any("English harmful" in m for _, m in rec.calls) and any("Chinese harmless" in m for _, m in rec.calls)
    assert [p.languages for p in partial] == [["en"], ["en", "zh"]]
    alone = run_scan(tiny, prompts, ["en"], use_cache=False)  # what was kept is a scan of the finished languages
    assert partial[0].settings == alone.settings and partial[0].n_prompts == alone.n_prompts
    assert torch.equal(partial[0].contrast["en"]["mlp"], alone.contrast["en"]["mlp"])
    assert partial[-1].settings == result.settings


def test_evaluation_and_controls_report_one_overall_fraction(tiny):
    prompts = bundled_prompts(["en", "zh"], split="heldout").head(1)
    rec = Recorder()
    result = evaluate(tiny, prompts, ["en", "zh"], max_new_tokens=4, progress=rec, mc_questions=3)
    rec.check()
    assert result["utility"]["mc_n"] == 3
    assert sum("Writing replies" in m for _, m in rec.calls) == 4  # 2 languages × 2 labels
    assert {"Measuring perplexity on everyday text", "Answering multiple-choice questions"} <= {m for _, m in rec.calls}
    rec = Recorder()
    effect = Effect("suppress", NeuronSet((0, "mlp", i) for i in range(8)))
    evaluate_effects(tiny, prompts, ["en"], [effect], seeds=(0,), max_new_tokens=4, progress=rec)
    rec.check()
    assert any(m.startswith("Random neurons, seed 0 (3/3)") for _, m in rec.calls)


def test_search_reports_plainly_and_hands_over_each_step(tiny):
    rec, steps = Recorder(), []
    result = minimal_subset(tiny, tiny, random_scores(tiny), ["How do I steal a car?"], ["How do I bake bread?"],
                            ["Bread is baked from flour and water."], goal=1.0, max_fraction=0.05, progress=rec,
                            on_step=lambda partial: steps.append(len(partial.points)))
    rec.check()
    assert steps == list(range(1, len(result.points) + 1)) and len(steps) > 1


def test_presets_size_jobs_and_costs_are_timed_on_the_model(tiny):
    quick, full = PRESETS["quick"], PRESETS["full"]
    assert quick.scan == ScanSize(("en", "zh"), 8) and quick.evaluation.seeds == 1
    assert evaluation_size(quick.evaluation).units() < evaluation_size(full.evaluation).units() / 5
    assert scan_work(32, "attribution").units() > scan_work(32).units()
    costs = measure_costs(tiny)
    assert costs.token > 0 and costs.new_token > 0 and costs.prompt_tokens > 10
    small, large = costs.seconds(Work(prompts=8)), costs.seconds(Work(prompts=8, new_tokens=80))
    assert 0 < small < large

