"""A tiny point_mass_maze model folder with inference samples (as tests/adapters)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
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
    for ep in range(4):  # some samples on the reach_top_left and reach_top_right targets
        env.reset(seed=ep)
        s = env.get_state()
        s[1:3] = (-0.15 if ep % 2 == 0 else 0.15, 0.15 - 0.005 * ep)
        env.set_state(s)
        for _ in range(150):
            o, *_ = env.step(np.zeros(2))
            obs.append(o)
            states.append(env.get_state())
    InferenceSet("point_mass_maze", np.stack(obs), np.stack(states)).save(folder)
    return folder
