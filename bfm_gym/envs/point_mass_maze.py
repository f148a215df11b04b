"""point_mass_maze: the four-room 2-D maze of URLB/ExORL and the FB papers.

A point mass (2 slide joints, 2 motors, damping 1, the dm_control point_mass
actuation) moves in the square ``[-0.3, 0.3]^2`` split into four rooms by a cross
of walls; each wall half has one 0.08-wide doorway, so the rooms form a ring.
Observation: ``position (2), velocity (2)`` in that order. Episodes last 20 s at
0.02 s per step (1000 steps). Each episode starts at a uniformly random free
position with zero velocity (our choice: it spreads reward-free data over the
whole maze and makes every reach task non-trivial).

Reach rewards use dm_control's point_mass shaping: ``tolerance(distance, bounds=(0,
0.015), margin=0.015)`` times the small-control factor ``(4 + tolerance(control,
margin=1, value_at_margin=0, sigmoid="quadratic").mean()) / 5``. The control is part
of the simulator state (``data.ctrl``), so rewards relabel exactly offline.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
from dm_control import mujoco
from dm_control.rl import control
from dm_control.suite import base, common

ARENA_HALF_SIZE = 0.29
"""Joint limit of the point mass: the reachable square is ``[-0.29, 0.29]^2``."""

TARGET_SIZE = 0.015
"""Radius within which a reach reward is 1 (dm_control point_mass's target size)."""

TARGETS: dict[str, tuple[float, float]] = {
    "top_left": (-0.15, 0.15),
    "top_right": (0.15, 0.15),
    "bottom_left": (-0.15, -0.15),
    "bottom_right": (0.15, -0.15),
}
"""Room centres used by the ``reach_<corner>`` tasks."""

_TIME_LIMIT = 20.0
_CLEARANCE = 0.02  # keep start positions this far from wall centre lines
_DOOR_HALF_WIDTH = 0.04
_DOOR_CENTRES = (-0.15, 0.15)


def _model_xml() -> str:
    return (resources.files("bfm_gym.envs") / "assets" / "point_mass_maze.xml").read_text()


class Physics(mujoco.Physics):
    """Physics with the helpers the reach rewards use."""

    def mass_position(self) -> np.ndarray:
        """Returns the ``(x, y)`` position of the point mass."""
        return self.named.data.qpos[["root_x", "root_y"]].copy()

    def mass_velocity(self) -> np.ndarray:
        """Returns the ``(vx, vy)`` velocity of the point mass."""
        return self.named.data.qvel[["root_x", "root_y"]].copy()


def _in_wall(xy: np.ndarray) -> bool:
    """True if a point mass centred at ``xy`` would touch an inner wall."""
    x, y = float(xy[0]), float(xy[1])
    for along, across in ((y, x), (x, y)):  # vertical wall x=0, horizontal wall y=0
        if abs(across) < _CLEARANCE:
            in_door = any(abs(along - c) < _DOOR_HALF_WIDTH - 0.01 for c in _DOOR_CENTRES)
            if not in_door:
                return True
    return False


class MazeTask(base.Task):
    """Maze task: random free start, position and velocity observed.

    Args:
        target: ``(x, y)`` to reach, or ``None`` for reward 0 (bfm_gym envs compute
            task rewards themselves; a target makes this a plain dm_control task).
        random: Seed or ``np.random.RandomState`` for start positions.
    """

    def __init__(self, target: Any = None, random: Any = None) -> None:
        super().__init__(random=random)
        self._reward = None if target is None else reach_reward(target)

    def initialize_episode(self, physics: Physics) -> None:
        lim = ARENA_HALF_SIZE - _CLEARANCE
        while True:
            xy = self.random.uniform(-lim, lim, size=2)
            if not _in_wall(xy):
                break
        physics.named.data.qpos[["root_x", "root_y"]] = xy
        physics.named.data.qvel[:] = 0.0
        super().initialize_episode(physics)

    def get_observation(self, physics: Physics) -> dict[str, np.ndarray]:
        from collections import OrderedDict

        data = physics.data  # qpos = (root_x, root_y), qvel likewise
        obs = OrderedDict()
        obs["position"] = data.qpos[:2].copy()
        obs["velocity"] = data.qvel[:2].copy()
        return obs

    def get_reward(self, physics: Physics) -> float:
        return 0.0 if self._reward is None else self._reward(physics)


def load(
    random: Any = None,
    target: Any = None,
    environment_kwargs: dict[str, Any] | None = None,
) -> control.Environment:
    """Builds the dm_control environment (reward-free unless ``target`` is given).

    Args:
        random: Seed or ``np.random.RandomState`` for start positions.
        target: ``(x, y)`` whose reach reward the dm_control env itself returns.
        environment_kwargs: Extra keyword arguments for ``control.Environment``.
    """
    physics = Physics.from_xml_string(_model_xml(), common.ASSETS)
    task = MazeTask(target=target, random=random)
    return control.Environment(
        physics, task, time_limit=_TIME_LIMIT, **(environment_kwargs or {})
    )


def observe(physics: Physics) -> np.ndarray:
    """Flat float32 observation, equal to flattening ``MazeTask.get_observation``."""
    data = physics.data
    return np.concatenate((data.qpos, data.qvel)).astype(np.float32)


def reach_reward(target: Any) -> Any:
    """Returns ``fn(physics) -> float``, the reward for reaching ``target = (x, y)``."""
    import math

    from bfm_gym.envs.shaping import tolerance

    goal = np.asarray(target, dtype=np.float64).reshape(2).copy()
    gx, gy = float(goal[0]), float(goal[1])

    def reward(physics: Physics) -> float:
        qpos, ctrl = physics.data.qpos, physics.data.ctrl  # root_x, root_y are qpos[0:2]
        dist = math.hypot(float(qpos[0]) - gx, float(qpos[1]) - gy)
        near = tolerance(dist, bounds=(0, TARGET_SIZE), margin=TARGET_SIZE)
        control_reward = 0.5 * (
            tolerance(ctrl[0], margin=1, value_at_margin=0, sigmoid="quadratic")
            + tolerance(ctrl[1], margin=1, value_at_margin=0, sigmoid="quadratic")
        )
        return near * (4 + control_reward) / 5

    reward.__name__ = f"reach_{goal[0]:+.3f}_{goal[1]:+.3f}"
    return reward
