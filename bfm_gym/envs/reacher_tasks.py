"""Reach tasks of Gymnasium's ``Reacher-v5``: put the fingertip on a fixed point of the plane.

Reacher-v5's 10-dim observation is ``cos q0, cos q1, sin q0, sin q1`` (the two joint angles),
``target x, y`` (the env's own target, random each episode), ``q0', q1'`` (joint velocities)
and ``fingertip - target`` (x, y). So the fingertip is ``obs[4:6] + obs[8:10]``, and a reward
of the fingertip's position is a function of the observation after the step: these tasks are
``fn(obs, action, next_obs)`` and relabel any Reacher-v5 dataset, with or without simulator
states. They ignore the env's target (which stays in the observation and is drawn as usual).

The reward is dm_control's ``tolerance`` of the fingertip-to-point distance: 1 within 2 cm,
falling as a Gaussian to 0.1 at 5 cm beyond that and to about 0 beyond 12 cm (so a 50-step
episode returns at most 50). The margin is narrow on purpose: the points are 0.21 m apart
and the arm's base lies 0.15 m from each, so a wide margin would pay every task for
sitting near the base (a first try with a 15 cm margin paid a folded, spinning arm about a
quarter of the maximum on all four tasks at once).
The four points lie 0.15 m from the arm's base (the arm reaches 0.01 to 0.21 m) on the
diagonals; none is near the pose an episode starts in (arm stretched along +x, fingertip
near (0.21, 0)), so holding still earns little. The env's own reward, task ``native`` (minus the distance to the env's
target minus a control cost), is always there too.

:func:`reacher_tasks` lists them as ``(env id, name, fn, description)`` rows, the form the
``register_tasks`` plugin hook takes; :func:`register_reacher_tasks` registers them through
:func:`bfm_gym.envs.register_task`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bfm_gym.envs.shaping import tolerance

__all__ = ["REACHER", "REACH_POINTS", "fingertip", "reach_reward", "reacher_tasks", "register_reacher_tasks"]

REACHER = "Reacher-v5"
"""The Gymnasium id these tasks are for."""

REACH_RADIUS = 0.15
"""Distance (m) of the reach points from the arm's base."""

_D = round(REACH_RADIUS / math.sqrt(2.0), 4)
REACH_POINTS: dict[str, tuple[float, float]] = {
    "reach_northeast": (_D, _D),
    "reach_northwest": (-_D, _D),
    "reach_southwest": (-_D, -_D),
    "reach_southeast": (_D, -_D),
}
"""Task name -> the (x, y) point the fingertip should reach."""

TOLERANCE = 0.02
"""Distance (m) within which the reward is 1."""

MARGIN = 0.05
"""Distance (m) beyond ``TOLERANCE`` at which the reward has fallen to 0.1."""


def fingertip(obs: np.ndarray) -> np.ndarray:
    """The fingertip's (x, y) in a Reacher-v5 observation: target + (fingertip - target)."""
    obs = np.asarray(obs, dtype=np.float64)
    if obs.shape != (10,):
        raise ValueError(
            f"Reacher-v5 tasks read the env's 10-dim observation; got shape {obs.shape}. "
            "Use them with gym.make('Reacher-v5') (no observation wrappers)."
        )
    return obs[4:6] + obs[8:10]


def reach_reward(point: tuple[float, float]) -> Any:
    """The task ``fn(obs, action, next_obs)`` of reaching ``point`` (see the module docstring)."""
    px, py = float(point[0]), float(point[1])

    def reward(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> float:
        x, y = fingertip(next_obs)
        return tolerance(math.hypot(x - px, y - py), bounds=(0.0, TOLERANCE), margin=MARGIN)

    return reward


def reacher_tasks() -> list[tuple[str, str, Any, str]]:
    """``(env id, task name, fn, description)`` of every Reacher-v5 reach task."""
    rows = []
    for name, (x, y) in REACH_POINTS.items():
        fn = reach_reward((x, y))
        fn.__name__ = fn.__qualname__ = name
        rows.append((REACHER, name, fn, f"fingertip on the point ({x:+.2f}, {y:+.2f}) m"))
    return rows


def register_reacher_tasks(*, overwrite: bool = True) -> list[str]:
    """Registers the reach tasks for Reacher-v5 (replacing same-named ones by default);
    returns their names."""
    from bfm_gym.envs.tasks import register_task

    names = []
    for env_id, name, fn, description in reacher_tasks():
        register_task(env_id, name, fn, description, overwrite=overwrite)
        names.append(name)
    return names
