"""Random-walk trajectories of a 2-D point (episodes, for HILP's goal sampling)."""

from __future__ import annotations

import numpy as np


def point_walks(episodes: int = 40, steps: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """A point in [-1, 1]^2 moving by 0.2 * action, uniform random actions, grouped by episode."""
    rng = np.random.default_rng(seed)
    obs, action, next_obs, episode = [], [], [], []
    for e in range(episodes):
        s = rng.uniform(-1, 1, 2)
        for _ in range(steps):
            a = rng.uniform(-1, 1, 2)
            s2 = np.clip(s + 0.2 * a, -1, 1)
            obs.append(s)
            action.append(a)
            next_obs.append(s2)
            episode.append(e)
            s = s2
    f32 = np.float32
    return {"obs": np.asarray(obs, f32), "action": np.asarray(action, f32),
            "next_obs": np.asarray(next_obs, f32), "episode": np.asarray(episode)}
