"""benchmarks/sweep_compare.py: paired summary of checkpoint sweeps of one run."""

from __future__ import annotations

import pytest

from benchmark_script import load_benchmark

sweep_compare = load_benchmark("sweep_compare")


def _sweep(means: dict[int, float], episodes: int = 10, seed: int = 0) -> dict[int, dict]:
    return {s: {"step": s, "mean": m, "episodes": episodes, "seed": seed} for s, m in means.items()}


def test_summary_pairs_the_steps_every_sweep_scored() -> None:
    curves = {
        "online": _sweep({10: 100.0, 20: 300.0, 30: 100.0, 40: 500.0}),
        "ema": _sweep({20: 250.0, 30: 260.0, 40: 270.0, 50: 999.0}),  # 50: only here
    }
    out = sweep_compare.summarise(curves, from_step=20, floor=260.0, reps=2000)
    assert out["steps"] == [20, 30, 40] and out["episodes"] == (10, 0)
    online, ema = out["summary"]["online"], out["summary"]["ema"]
    assert online["mean"] == 300.0 and online["mean_abs_change"] == 300.0 and online["best_step"] == 40
    assert online["steps_at_floor"] == 2 and ema["steps_at_floor"] == 2
    assert ema["mean_abs_change"] == 10.0 and ema["min"] == 250.0
    diff = ema["minus_online"]  # -50, +160, -230
    assert diff["mean"] == pytest.approx(-40.0) and diff["steps_better"] == 1
    assert diff["ci95"][0] <= -40.0 <= diff["ci95"][1]


def test_summary_refuses_unpaired_sweeps() -> None:
    with pytest.raises(ValueError, match="different episodes"):
        sweep_compare.summarise({"a": _sweep({1: 1.0, 2: 2.0}), "b": _sweep({1: 1.0, 2: 2.0}, seed=1)}, 0, None)
    with pytest.raises(ValueError, match="share 1 steps"):
        sweep_compare.summarise({"a": _sweep({1: 1.0, 2: 2.0}), "b": _sweep({2: 1.0, 3: 2.0})}, 0, None)
