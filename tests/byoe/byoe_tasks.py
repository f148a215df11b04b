"""Tasks of Hopper-v5 and a Dict-observation env used by the bring-your-own-env tests
(importable by name: ``byoe_tasks:DictPointEnv`` is a Gymnasium entry point)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

HOPPER = "Hopper-v5"


def hopper_height(env) -> float:
    """Simulator task: torso height (qpos[1]) of the next state."""
    return float(env.data.qpos[1])


def hopper_forward(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> float:
    """Transition task: forward velocity of the torso after the step, minus an action cost."""
    return float(next_obs[5] - 0.1 * np.square(action).sum())



class DictPointEnv(gym.Env):
    """A point in the plane with Dict observations ``{"velocity", "position"}``: the action is
    an acceleration in [-1, 1]^2, the reward minus the distance to the origin (not MuJoCo)."""

    def __init__(self, max_speed: float = 1.0) -> None:
        box = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.observation_space = gym.spaces.Dict({"velocity": box, "position": box})
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.max_speed = max_speed
        self._p = np.zeros(2)
        self._v = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._p = self.np_random.uniform(-1, 1, 2)
        self._v = np.zeros(2)
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        self._v = np.clip(self._v + 0.1 * np.asarray(action, np.float64), -self.max_speed, self.max_speed)
        self._p = self._p + 0.1 * self._v
        return self._obs(), -float(np.linalg.norm(self._p)), False, False, {}

    def _obs(self) -> dict:
        return {"velocity": self._v.copy(), "position": self._p.copy()}
