"""A tiny point_mass_maze model folder with inference samples on two reach targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_maze import write_tiny_maze_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # some samples on the reach_top_left and reach_top_right targets
    starts = [(-0.15 if ep % 2 == 0 else 0.15, 0.15 - 0.005 * ep) for ep in range(4)]
    return write_tiny_maze_model(tmp_path_factory.mktemp("m") / "maze-tiny", starts, steps=150)
