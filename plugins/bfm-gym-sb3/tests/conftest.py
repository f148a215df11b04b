"""Test set-up of the plugin: only this plugin loads, one torch thread, a tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ["BFM_GYM_LOAD_PLUGINS"] = "sb3"  # other installed plugins stay out of these tests
os.environ.setdefault("MUJOCO_GL", "egl")


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained point_mass_maze model folder with reward-labelled inference samples."""
    import torch

    from bfm_gym.envs import make_env
    from bfm_gym.evaluation.zero_shot import InferenceSet
    from bfm_gym.models import BFM, FBConfig, FBModel, ModelMetadata

    torch.manual_seed(0)
    model = FBModel(FBConfig.preset("point_mass_maze", "tiny"), obs_dim=4, action_dim=2)
    model.finalize(torch.rand(256, 4) * 0.6 - 0.3)
    folder = tmp_path_factory.mktemp("model") / "maze-tiny"
    BFM(model, ModelMetadata(domain="point_mass_maze")).save(folder)
    env = make_env("point_mass_maze")
    obs, states = [], []
    for ep in range(2):
        env.reset(seed=ep)
        s = env.get_state()
        s[1:3] = (-0.15, 0.15)  # samples on the reach_top_left target, so z_r is defined
        env.set_state(s)
        for _ in range(100):
            o, *_ = env.step(np.zeros(2))
            obs.append(o)
            states.append(env.get_state())
    InferenceSet("point_mass_maze", np.stack(obs), np.stack(states)).save(folder)
    return folder
