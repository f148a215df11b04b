"""Time to 90 % of the oracle: per curve (first point at or above it, the point from which it
holds) and per task across seeds (the compare report's table: tests/experiments/test_compare.py)."""

from __future__ import annotations

from bfm_gym.experiments.compare.time_to_oracle import summarize_time_to_oracle, time_to_fraction


def test_time_to_fraction_reached_and_held() -> None:
    pts = [(1000, 50.0), (2000, 95.0), (3000, 80.0), (4000, 90.0), (5000, 120.0)]
    assert time_to_fraction(pts, 100.0) == {"points": 5, "reached_steps": 2000, "held_steps": 4000}
    assert time_to_fraction(pts, 100.0, fraction=1.0) == {"points": 5, "reached_steps": 5000, "held_steps": 5000}
    # never there; ends below after reaching it; no meaningful oracle; NaN points ignored
    assert time_to_fraction(pts, 200.0)["reached_steps"] is None
    assert time_to_fraction([(1, 95.0), (2, 10.0)], 100.0) == {"points": 2, "reached_steps": 1, "held_steps": None}
    assert time_to_fraction(pts, 0.0)["reached_steps"] is None
    assert time_to_fraction([(1, float("nan")), (2, 91.0)], 100.0)["reached_steps"] == 2
    summary = summarize_time_to_oracle({"t": [time_to_fraction(pts, 100.0), time_to_fraction(pts, 200.0),
                                              time_to_fraction([(4000, 99.0)], 100.0)]}, episode_length=1000)
    assert summary["t"]["cells"] == 3 and summary["t"]["reached"] == 2 and summary["t"]["held"] == 2
    assert summary["t"]["reached_episodes"] == {"median": 3.0, "min": 2.0, "max": 4.0}
