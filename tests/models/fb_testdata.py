"""Synthetic-but-real transitions for the FB tests (imported by conftest and tests)."""

from __future__ import annotations

import numpy as np


def point_transitions(n: int = 4096, seed: int = 0) -> dict[str, np.ndarray]:
    """A 2-D point in [-1, 1]^2 that moves by 0.2 * action (clipped at the walls).

    Observations are ``(x, y)``; actions uniform in [-1, 1]^2 (a reward-free, exploratory
    dataset); nothing terminates.
    """
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    action = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    next_obs = np.clip(obs + 0.2 * action, -1, 1).astype(np.float32)
    return {
        "obs": obs,
        "action": action,
        "next_obs": next_obs,
        "terminated": np.zeros(n, dtype=bool),
    }
