"""Fixtures for the FB model tests: a tiny config and a real (synthetic) transition set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bfm_gym.models.fb import FBConfig, OfflineReplay
from fb_testdata import point_transitions


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def point_data() -> dict[str, np.ndarray]:
    return point_transitions()


@pytest.fixture
def point_replay(point_data: dict[str, np.ndarray]) -> OfflineReplay:
    return OfflineReplay(**point_data)


@pytest.fixture
def tiny_config() -> FBConfig:
    return FBConfig.preset("point_mass_maze", "tiny")
