"""Tasks of Hopper-v5 used by the bring-your-own-env tests (importable by name)."""

from __future__ import annotations

import numpy as np

HOPPER = "Hopper-v5"


def hopper_height(env) -> float:
    """Simulator task: torso height (qpos[1]) of the next state."""
    return float(env.data.qpos[1])


def hopper_forward(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> float:
    """Transition task: forward velocity of the torso after the step, minus an action cost."""
    return float(next_obs[5] - 0.1 * np.square(action).sum())
