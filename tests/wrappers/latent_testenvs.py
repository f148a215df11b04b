"""Test helpers: tiny BFMs and a GenericTestEnv-style echo env that records what it receives."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from bfm_gym.models import BFM, FBConfig, FBModel, ModelMetadata

DIMS = {"walker": (24, 6), "cheetah": (17, 6), "quadruped": (78, 12), "point_mass_maze": (4, 2)}
"""(obs_dim, action_dim) of every built-in domain."""


def tiny_bfm(domain: str = "walker", seed: int = 0, **overrides: Any) -> BFM:
    """An untrained tiny-preset BFM of ``domain`` (z_dim 8, hidden 32)."""
    import torch

    torch.manual_seed(seed)
    obs_dim, action_dim = DIMS[domain]
    config = FBConfig.preset(domain, "tiny", **overrides)
    return BFM(
        FBModel(config, obs_dim=obs_dim, action_dim=action_dim), ModelMetadata(domain=domain)
    )


class EchoEnv(gym.Env):
    """Observation ``t * 0.1 + ramp``, reward ``t`` at the t-th step (1-based), records actions.

    Args:
        obs_dim: Observation size.
        action_dim: Action size.
        terminate_at: Step index (1-based) that terminates, or None.
        truncate_at: Step index that truncates, or None.
        low: Action lower bound (upper bound is ``-low``).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        obs_dim: int = 24,
        action_dim: int = 6,
        terminate_at: int | None = None,
        truncate_at: int | None = None,
        low: float = -1.0,
    ) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(low, -low, (action_dim,), np.float32)
        self.terminate_at, self.truncate_at = terminate_at, truncate_at
        self.ramp = np.linspace(-1, 1, obs_dim, dtype=np.float32)
        self.t = 0
        self.actions: list[np.ndarray] = []

    def _obs(self) -> np.ndarray:
        return (self.ramp + 0.1 * self.t).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        self.actions = []
        return self._obs(), {"reset": True}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.actions.append(np.array(action, copy=True))
        self.t += 1
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        truncated = self.truncate_at is not None and self.t >= self.truncate_at
        return self._obs(), float(self.t), terminated, truncated, {"t": self.t}


def double_reward(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, info: dict) -> float:
    """A reward_fn importable by name: twice the echo env's step index."""
    return 2.0 * info["t"]
