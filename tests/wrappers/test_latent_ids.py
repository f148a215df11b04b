"""Registered latent ids: every one passes Gymnasium's and SB3's env checkers, specs serialise."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import bfm_gym  # also registers the raw ids
from bfm_gym.envs import BUILTIN_TASKS
from bfm_gym.wrappers import LatentActionWrapper, latent_env_id, register_latent_envs
from bfm_gym.wrappers.vector import LatentActionVectorEnv
from latent_testenvs import DIMS

LATENT_IDS = register_latent_envs()


def test_every_domain_and_task_has_a_latent_id() -> None:
    expected = {latent_env_id(d, t) for d, ts in BUILTIN_TASKS.items() for t in (None, *ts)}
    expected.add("bfm_gym/point_mass_maze-reach-latent-v0")
    assert set(LATENT_IDS) == expected
    assert register_latent_envs() == LATENT_IDS  # idempotent
    for id_ in LATENT_IDS:
        spec = gym.spec(id_)
        assert spec.entry_point == "bfm_gym.wrappers.registration:make_latent_env"
        assert spec.vector_entry_point == "bfm_gym.wrappers.vector:make_latent_vector_env"
        assert spec.kwargs["model"] == spec.kwargs["domain"]  # the shipped model of the domain


@pytest.mark.parametrize("id_", LATENT_IDS)
def test_check_env_every_latent_id(id_: str, shipped) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(id_, max_inner_steps=20)  # short inner episodes keep the checker fast
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite obs bounds and the wrapper stack are expected
        check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=False)
    domain = env.spec.kwargs["domain"]
    obs_dim, _ = DIMS[domain]
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    assert env.action_space == gym.spaces.Box(-1, 1, (8,), np.float32)
    assert env.get_wrapper_attr("supports_state_reset") is True
    spec = json.loads(env.spec.to_json())
    assert spec["kwargs"]["model"] == domain
    env.close()


def test_missing_model_lists_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from bfm_gym.plugins import load_plugins

    # every built-in domain ships a model now: take cheetah's out of the registry
    monkeypatch.delitem(load_plugins().models, "cheetah")
    with pytest.raises(ValueError) as err:
        gym.make("bfm_gym/cheetah-run-latent-v0")
    msg = str(err.value)
    assert "No model 'cheetah' for the cheetah domain" in msg
    assert "shipped models:" in msg and "model=" in msg and "walker" in msg


def test_latent_id_uses_the_shipped_model() -> None:
    env = gym.make("bfm_gym/walker-run-latent-v0")  # the shipped walker model, by default
    assert env.action_space.shape == (bfm_gym.load("walker").z_dim,)
    env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward)
    env.close()


def test_explicit_model_path_and_round_trip(model_dirs) -> None:
    path = str(model_dirs["cheetah"])
    env = gym.make("bfm_gym/cheetah-run-latent-v0", model=path, z_hold=5)
    spec = json.loads(env.spec.to_json())
    assert spec["kwargs"]["model"] == path and spec["kwargs"]["z_hold"] == 5
    again = gym.make(env.spec)
    assert again.spec.to_json() == env.spec.to_json()
    a = np.full(8, 0.25, np.float32)
    env.reset(seed=1)
    again.reset(seed=1)
    np.testing.assert_array_equal(env.step(a)[0], again.step(a)[0])
    assert again.get_wrapper_attr("z_hold") == 5


def test_inner_episode_cap_is_not_an_outer_time_limit(model_dirs) -> None:
    env = gym.make("bfm_gym/walker-stand-latent-v0", model=str(model_dirs["walker"]),
                   z_hold=4, max_inner_steps=10)  # fmt: skip
    assert env.spec.max_episode_steps is None
    env.reset(seed=0)
    holds = [env.step(np.zeros(8, np.float32))[-1]["hold_steps"] for _ in range(3)]
    assert holds == [4, 4, 2]
    again = gym.make(env.spec)
    assert again.spec.max_episode_steps is None


def test_goal_and_reward_free_ids(model_dirs) -> None:
    maze = str(model_dirs["point_mass_maze"])
    reach = gym.make("bfm_gym/point_mass_maze-reach-latent-v0", model=maze, goal=(0.2, -0.1))
    assert reach.unwrapped.task is not None
    free = gym.make("bfm_gym/point_mass_maze-latent-v0", model=maze, z_hold=3)
    free.reset(seed=0)
    assert free.step(np.zeros(8, np.float32))[1] == 0.0


def test_model_of_the_wrong_domain_is_refused(model_dirs) -> None:
    with pytest.raises(ValueError, match="does not match"):
        gym.make("bfm_gym/walker-run-latent-v0", model=str(model_dirs["cheetah"]))


def test_render_mode_rgb_array(model_dirs) -> None:
    env = gym.make("bfm_gym/walker-run-latent-v0", model=str(model_dirs["walker"]),
                   render_mode="rgb_array", render_kwargs={"height": 40, "width": 56})  # fmt: skip
    env.reset(seed=0)
    env.step(np.zeros(8, np.float32))
    frame = env.render()
    assert frame.shape == (40, 56, 3) and frame.dtype == np.uint8 and frame.std() > 0


def test_make_vec_uses_the_vector_entry_point(model_dirs) -> None:
    envs = gym.make_vec("bfm_gym/walker-run-latent-v0", num_envs=3, model=str(model_dirs["walker"]))
    assert isinstance(envs, LatentActionVectorEnv)
    assert envs.action_space == gym.spaces.Box(-1, 1, (3, 8), np.float32)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    sync = gym.make_vec("bfm_gym/walker-run-latent-v0", num_envs=2, vectorization_mode="sync",
                        model=str(model_dirs["walker"]))  # fmt: skip
    assert isinstance(sync.envs[0].env.env, LatentActionWrapper) or "LatentActionWrapper" in str(
        sync.envs[0]
    )


@pytest.mark.parametrize("z_hold,action_map", [(3, "sphere"), (1, "raw")])
def test_check_env_hold_and_map_variants(z_hold, action_map: str, model_dirs) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("bfm_gym/point_mass_maze-reach_top_left-latent-v0", max_inner_steps=30,
                   model=str(model_dirs["point_mass_maze"]), z_hold=z_hold, action_map=action_map)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=False)


def test_episode_hold_passes_sb3_check(model_dirs) -> None:
    """One step is one episode: Gymnasium's check_env rejects "truncates after 1 step" by design,
    so only SB3's checker applies to z_hold="episode"."""
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("bfm_gym/point_mass_maze-reach_top_left-latent-v0", max_inner_steps=30,
                   model=str(model_dirs["point_mass_maze"]), z_hold="episode")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(env, warn=False)
    env.reset(seed=0)
    _, _, _terminated, truncated, info = env.step(np.zeros(8, np.float32))
    assert truncated and len(info["transitions"]) == 30
