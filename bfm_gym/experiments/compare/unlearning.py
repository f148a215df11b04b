"""The "unlearning" drop: how far an adapter's paired evaluation curve falls below the
zero-shot level, and how long it takes to come back.

Fine-tuning a pre-trained policy often first gets worse before it gets better (the
fast-adaptation paper of Sikchi et al. 2025 reports it for fine-tuning baselines; ReLA
shows it too). For every cell, from its evaluation points (each the mean return over
the fixed start states, z frozen) and the zero-shot z's return on the *same* start
states (that seed's level, so the comparison is paired):

* ``lowest``: the minimum over the curve of ``eval / zero-shot`` (1 = level with
  zero-shot; n/a when the level is <= 0);
* ``drop``: ``max(0, 1 - lowest)``, the depth of the drop as a fraction of zero-shot;
* ``recovery_steps``: env steps (budget, lookahead included) of the first evaluation
  point at or after the lowest one whose return is >= the zero-shot level; 0 when the
  curve never goes below it; None ("never") when it does not come back within the
  budget. ``recovery_episodes`` is the same in episodes' worth of budget.

Across seeds: mean ``drop`` and ``lowest`` with 95 % bootstrap intervals (seeds
resampled; tasks as strata for the all-tasks row), how many cells recovered, and the
mean recovery time of those that did, with its interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bfm_gym.evaluation.aggregate import bootstrap_replicates

__all__ = ["summarize_unlearning", "unlearning"]


def unlearning(points: Sequence[tuple[int, float]], level: float | None) -> dict[str, Any]:
    """Drop depth and recovery time of one evaluation curve.

    Args:
        points: ``(env_steps, eval_return)`` of the evaluation points, in order.
        level: The zero-shot z's return on the same start states.

    Returns:
        ``{"points", "lowest", "drop", "lowest_steps", "recovered", "recovery_steps"}``;
        ``lowest``/``drop`` are None when ``level`` is missing or <= 0, everything is None
        without points.
    """
    pts = [(int(s), float(v)) for s, v in points if v is not None and math.isfinite(v)]
    if not pts or level is None or not math.isfinite(level):
        return {"points": len(pts), "lowest": None, "drop": None, "lowest_steps": None,
                "recovered": None, "recovery_steps": None}
    i = int(np.argmin([v for _, v in pts]))  # first occurrence of the minimum
    lowest = pts[i][1] / level if level > 0 else None
    if pts[i][1] >= level:
        recovered, at = True, 0
    else:
        later = [s for s, v in pts[i + 1:] if v >= level]
        recovered, at = bool(later), (later[0] if later else None)
    return {"points": len(pts), "lowest": None if lowest is None else round(lowest, 4),
            "drop": None if lowest is None else round(max(0.0, 1.0 - lowest), 4),
            "lowest_steps": pts[i][0], "recovered": recovered, "recovery_steps": at}


def _interval(by_task: Mapping[str, Sequence[float]], reps: int) -> dict[str, Any]:
    vals = [v for vs in by_task.values() for v in vs if v is not None and math.isfinite(v)]
    if not vals:
        return {"mean": None, "low": None, "high": None, "n": 0}
    data = {t: np.asarray([v for v in vs if v is not None and math.isfinite(v)], dtype=np.float64)
            for t, vs in by_task.items()}
    means = bootstrap_replicates({t: d for t, d in data.items() if d.size}, "mean", reps=reps, seed=0)
    return {"mean": round(float(np.mean(vals)), 4), "low": round(float(np.quantile(means, 0.025)), 4),
            "high": round(float(np.quantile(means, 0.975)), 4), "n": len(vals)}


def summarize_unlearning(per_cell: Mapping[str, Sequence[dict[str, Any]]], episode_length: int,
                         reps: int) -> dict[str, Any]:
    """Across seeds, per task and over all tasks: see the module docstring.

    Args:
        per_cell: Task -> the :func:`unlearning` results of its seeds.
        episode_length: Env steps per episode of budget (for ``recovery_episodes``).
        reps: Bootstrap replicates.
    """
    def one(by_task: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, Any]:
        cells = [c for cs in by_task.values() for c in cs]
        scored = [c for c in cells if c["recovered"] is not None]
        rec = {t: [c["recovery_steps"] for c in cs if c["recovered"]] for t, cs in by_task.items()}
        steps = _interval(rec, reps)
        return {
            "cells": len(cells),
            "drop": _interval({t: [c["drop"] for c in cs] for t, cs in by_task.items()}, reps),
            "lowest": _interval({t: [c["lowest"] for c in cs] for t, cs in by_task.items()}, reps),
            "recovered": sum(bool(c["recovered"]) for c in scored),
            "never": sum(c["recovered"] is False for c in scored),
            "recovery_steps": steps,
            "recovery_episodes": {k: (round(v / episode_length, 3) if isinstance(v, float) else v)
                                  for k, v in steps.items()},
            "per_seed": {t: list(cs) for t, cs in by_task.items()},
        }

    out = {task: one({task: cells}) for task, cells in per_cell.items()}
    out["all tasks"] = one(per_cell)
    out["all tasks"].pop("per_seed")
    return out
