"""The tiny maze model the adapter tests share (samples on the reach_top_left target)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_maze import write_tiny_maze_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    starts = [(-0.15, 0.15 - 0.005 * ep) for ep in range(3)]
    return write_tiny_maze_model(tmp_path_factory.mktemp("m") / "maze-tiny", starts, steps=200)
