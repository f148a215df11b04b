"""Unit tests of bfm-gym-sb3: initial policies equal the BFM's, episode lengths, state arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bfm_gym_sb3.adapters import (
    SACFinetuneAdapter,
    TD3FinetuneAdapter,
    TD3LatentAdapter,
    episode_steps,
    to_z,
)

TASK = {"domain": "point_mass_maze", "task": "reach_top_left", "goal": None}


def _make(cls: type, model_dir: Path, config: dict) -> Any:
    import bfm_gym
    from bfm_gym.evaluation.zero_shot import InferenceSet

    return cls(bfm_gym.load(str(model_dir)), TASK, config, seed=0, samples=InferenceSet.load(model_dir))


@pytest.mark.parametrize("cls", [TD3FinetuneAdapter, SACFinetuneAdapter])
def test_initial_deterministic_action_is_the_bfm_mean(model_dir: Path, cls: type) -> None:
    agent = _make(cls, model_dir, {"critic_hidden": 16})
    obs = np.random.default_rng(1).uniform(-0.3, 0.3, (64, 4)).astype(np.float32)
    action, _ = agent.model.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, agent.bfm.act(obs, agent.z_r), atol=1e-5)


def test_state_dict_round_trip_is_arrays_only(model_dir: Path, tmp_path: Path) -> None:
    agent = _make(TD3LatentAdapter, model_dir, {"hidden": 16})
    state = agent.state_dict()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    np.savez(tmp_path / "s.npz", **state)
    other = _make(TD3LatentAdapter, model_dir, {"hidden": 16, "z_init": "random"})
    with np.load(tmp_path / "s.npz", allow_pickle=False) as st:
        other.load_state_dict({k: st[k] for k in st.files})
    obs = np.zeros(4, np.float32)
    np.testing.assert_array_equal(other.act(obs), agent.act(obs))


def test_episode_length_and_action_map(model_dir: Path) -> None:
    import bfm_gym
    from gymnasium.wrappers import TimeLimit

    from bfm_gym.envs.dmc_env import DMCEnv
    from bfm_gym.wrappers import LatentActionWrapper

    bfm = bfm_gym.load(str(model_dir))
    assert episode_steps(DMCEnv("point_mass_maze", "reach_top_left")) == 1000
    inner = TimeLimit(DMCEnv("point_mass_maze", "reach_top_left"), 50)
    assert episode_steps(inner) == 50
    assert episode_steps(LatentActionWrapper(inner, bfm, z_hold=8, action_map="raw")) == 7
    z = to_z(bfm, np.zeros((2, bfm.z_dim), np.float32))
    np.testing.assert_allclose(z, np.ones_like(z), atol=1e-6)  # the zero action: all ones


@pytest.mark.parametrize("fields, word", [({"critic": "mlp"}, "distill"), ({"warmup_steps": -1}, "warmup_steps"),
                                          ({"distill_lr": 0.0}, "distill_lr")])
def test_finetune_config_rejects_bad_values_by_name(fields: dict, word: str) -> None:
    from bfm_gym_sb3.adapters import TD3FinetuneConfig

    with pytest.raises(ValueError, match=word):
        TD3FinetuneConfig(**fields)


def test_latent_config_rejects_nonpositive_noise() -> None:
    from bfm_gym_sb3.adapters import SACLatentConfig

    with pytest.raises(ValueError, match="latent_noise"):
        SACLatentConfig(latent_noise=0.0)
    assert SACLatentConfig.from_dict({"latent_noise": None}).latent_noise is None
