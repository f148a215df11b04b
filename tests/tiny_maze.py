"""A tiny, untrained point_mass_maze model folder with inference samples, for adapter tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_tiny_maze_model(folder: Path, starts: Sequence[tuple[float, float]], steps: int,
                          family: str = "fb") -> Path:
    """Saves a tiny model (seeded; FB by default, else the registered ``family``'s tiny preset)
    and inference samples recorded from ``starts``.

    Episode ``i`` resets with seed ``i``, moves the mass to ``starts[i]`` (e.g. onto a
    reach target, so the sparse reward appears in the samples) and records ``steps``
    zero-action steps.
    """
    import torch

    from bfm_gym.envs import make_env
    from bfm_gym.evaluation.zero_shot import InferenceSet
    from bfm_gym.models import BFM, FBConfig, FBModel, ModelMetadata

    if family == "fb":
        torch.manual_seed(0)
        model = FBModel(FBConfig.preset("point_mass_maze", "tiny"), obs_dim=4, action_dim=2)
        model.finalize(torch.rand(256, 4) * 0.6 - 0.3)
        BFM(model, ModelMetadata(domain="point_mass_maze")).save(folder)
    else:
        from bfm_gym.models.registry import families

        create = families()[family].resolve("create")
        create(4, 2, domain="point_mass_maze", size="tiny", seed=0).save(folder)
    env = make_env("point_mass_maze")
    obs, states = [], []
    for ep, xy in enumerate(starts):
        env.reset(seed=ep)
        s = env.get_state()
        s[1:3] = xy
        env.set_state(s)
        for _ in range(steps):
            o, *_ = env.step(np.zeros(2))
            obs.append(o)
            states.append(env.get_state())
    InferenceSet("point_mass_maze", np.stack(obs), np.stack(states)).save(folder)
    return folder


def without_wall_time(records: Sequence[dict]) -> list[dict]:
    """Records minus ``wall_s``: what a resumed run must reproduce exactly."""
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]
