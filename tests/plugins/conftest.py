"""Fixtures of the plugin-package tests: a tiny model folder, and plugins enabled through
their real entry points."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tiny_maze import write_tiny_maze_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny point_mass_maze model with inference samples on the top-left target."""
    starts = [(-0.15, 0.15 - 0.005 * ep) for ep in range(2)]
    return write_tiny_maze_model(tmp_path_factory.mktemp("m") / "maze-tiny", starts, steps=100)


def _require_installed(dist: str, folder: str) -> None:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{dist} is not installed in this environment; run `make install` "
                    f"(it installs {folder} in editable mode).", pytrace=False)


@pytest.fixture
def load_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """``load_only(entry_point, dist)``: loads only that installed plugin (plus the built-ins)
    through its real entry point for this test; fails, never skips, when it is not installed."""
    from bfm_gym.plugins import reset_plugins

    def load(entry_point: str, dist: str) -> None:
        _require_installed(dist, f"plugins/{dist}")
        monkeypatch.setenv("BFM_GYM_LOAD_PLUGINS", entry_point)
        reset_plugins()

    yield load
    reset_plugins()
