"""Fixtures for the FB model tests: a tiny config and a real (synthetic) transition set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bfm_gym.models.fb import FBConfig, OfflineReplay


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def point_transitions(n: int = 4096, seed: int = 0) -> dict[str, np.ndarray]:
    """A 2-D point in [-1, 1]^2 that moves by 0.2 * action (clipped at the walls).

    Observations are ``(x, y)``; actions uniform in [-1, 1]^2 (a reward-free, exploratory
    dataset); nothing terminates.
    """
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    action = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    next_obs = np.clip(obs + 0.2 * action, -1, 1).astype(np.float32)
    return {"obs": obs, "action": action, "next_obs": next_obs, "terminated": np.zeros(n, dtype=bool)}


@pytest.fixture(scope="session")
def point_data() -> dict[str, np.ndarray]:
    return point_transitions()


@pytest.fixture
def point_replay(point_data: dict[str, np.ndarray]) -> OfflineReplay:
    return OfflineReplay(**point_data)


@pytest.fixture
def tiny_config() -> FBConfig:
    return FBConfig.preset("point_mass_maze", "tiny")
