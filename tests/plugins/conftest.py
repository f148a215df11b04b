"""Fixtures of the plugin-package tests: a tiny model folder, and plugins enabled through
their real entry points."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny point_mass_maze model with inference samples on the top-left target."""
    import torch

    from bfm_gym.envs import make_env
    from bfm_gym.evaluation.zero_shot import InferenceSet
    from bfm_gym.models import BFM, FBConfig, FBModel, ModelMetadata

    torch.manual_seed(0)
    model = FBModel(FBConfig.preset("point_mass_maze", "tiny"), obs_dim=4, action_dim=2)
    model.finalize(torch.rand(256, 4) * 0.6 - 0.3)
    folder = tmp_path_factory.mktemp("m") / "maze-tiny"
    BFM(model, ModelMetadata(domain="point_mass_maze")).save(folder)
    env = make_env("point_mass_maze")
    obs, states = [], []
    for ep in range(2):
        env.reset(seed=ep)
        s = env.get_state()
        s[1:3] = (-0.15, 0.15 - 0.005 * ep)
        env.set_state(s)
        for _ in range(100):
            o, *_ = env.step(np.zeros(2))
            obs.append(o)
            states.append(env.get_state())
    InferenceSet("point_mass_maze", np.stack(obs), np.stack(states)).save(folder)
    return folder


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
