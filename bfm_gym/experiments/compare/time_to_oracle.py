"""How soon an adapter's paired evaluation reaches a fraction of the oracle (90 % by default).

OpTI-BFM's claim is about speed: the oracle's return within a handful of episodes. From each
cell's evaluation points (mean return over the fixed start states, z frozen) against the
task's oracle (``--oracle``, else the zero-shot return with dataset labels):

* ``reached_steps``: env steps of budget (lookahead included) of the first point at or above
  ``fraction x oracle``; None when no point within the budget gets there;
* ``held_steps``: the first point from which every later point stays at or above it; None
  when the last point is below it.

Across seeds, per task: how many cells reached it and held it to the end, and the median
and range of ``reached_steps`` (and in episodes' worth of budget) over the cells that did.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["summarize_time_to_oracle", "time_to_fraction"]

FRACTION = 0.9
"""The default fraction of the oracle (issue 16's OpTI-BFM target)."""


def time_to_fraction(points: Sequence[tuple[int, float]], oracle: float | None,
                     fraction: float = FRACTION) -> dict[str, Any]:
    """When one evaluation curve first reaches, and from when it holds, ``fraction x oracle``.

    Args:
        points: ``(env_steps, eval_return)`` of the evaluation points, in order.
        oracle: The task's oracle return.
        fraction: The fraction of the oracle to reach.

    Returns:
        ``{"points", "reached_steps", "held_steps"}``; both steps are None when the oracle
        is missing or <= 0 (no fraction of it is meaningful) or the curve never gets there.
    """
    pts = [(int(s), float(v)) for s, v in points if v is not None and math.isfinite(float(v))]
    if not pts or oracle is None or not math.isfinite(oracle) or oracle <= 0:
        return {"points": len(pts), "reached_steps": None, "held_steps": None}
    target = fraction * oracle
    reached = next((s for s, v in pts if v >= target), None)
    held = None
    for s, v in reversed(pts):
        if v < target:
            break
        held = s
    return {"points": len(pts), "reached_steps": reached, "held_steps": held}


def summarize_time_to_oracle(per_cell: Mapping[str, Sequence[dict[str, Any]]],
                             episode_length: int) -> dict[str, Any]:
    """Per task: ``cells``, ``reached``, ``held`` (counts), and ``reached_episodes``
    ``{"median", "min", "max"}`` over the cells that reached it (None when none did)."""
    out: dict[str, Any] = {}
    for task, cells in per_cell.items():
        steps = [c["reached_steps"] for c in cells if c["reached_steps"] is not None]
        eps = [s / episode_length for s in steps]
        out[task] = {
            "cells": len(cells),
            "reached": len(steps),
            "held": sum(c["held_steps"] is not None for c in cells),
            "reached_episodes": ({"median": round(statistics.median(eps), 3), "min": round(min(eps), 3),
                                  "max": round(max(eps), 3)} if eps else None),
            "per_seed": list(cells),
        }
    return out
