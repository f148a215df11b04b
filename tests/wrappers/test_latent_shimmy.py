"""Wrapping a dm_control env the user built with shimmy, and refusing mismatched envs clearly."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from dm_control import suite
from shimmy.dm_control_compatibility import DmControlCompatibilityV0

from bfm_gym.envs import make_env
from bfm_gym.wrappers import DMCFlattenObservation, LatentActionWrapper
from latent_testenvs import tiny_bfm


def _shimmy(domain: str = "walker", task: str = "run", seed: int = 0) -> gym.Env:
    return DmControlCompatibilityV0(suite.load(domain, task, task_kwargs={"random": seed}))


def test_native_order_flattening() -> None:
    env = DMCFlattenObservation(_shimmy())
    assert env.keys == ["orientations", "height", "velocity"]
    assert list(env.env.observation_space.spaces) == ["height", "orientations", "velocity"]
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (24,), np.float32)
    obs, _ = env.reset()
    ours, _ = make_env("walker", "run").reset(seed=0)
    np.testing.assert_array_equal(obs, ours)
    with pytest.raises(TypeError, match="already flat"):
        DMCFlattenObservation(make_env("walker"))


def test_hand_built_shimmy_env_follows_the_bfm_gym_trajectory() -> None:
    bfm = tiny_bfm("walker")
    theirs = LatentActionWrapper(DMCFlattenObservation(_shimmy(seed=4)), bfm, z_hold=5)
    ours = LatentActionWrapper(make_env("walker", "run"), bfm, z_hold=5)
    assert not theirs.supports_state_reset and ours.supports_state_reset
    np.testing.assert_array_equal(theirs.reset()[0], ours.reset(seed=4)[0])
    for a in np.random.default_rng(0).uniform(-1, 1, (3, 8)).astype(np.float32):
        o1, r1, *_, i1 = theirs.step(a)
        o2, r2, *_ = ours.step(a)
        np.testing.assert_allclose(o1, o2, atol=1e-5)
        assert r1 == pytest.approx(r2, abs=1e-6)  # dm_control's walker-run == bfm_gym's
        assert len(i1["transitions"]) == 5


def test_sorted_flattening_is_refused() -> None:
    env = gym.wrappers.FlattenObservation(_shimmy())
    with pytest.raises(
        ValueError, match=r"sorted key order .*native order .*DMCFlattenObservation"
    ):
        LatentActionWrapper(env, tiny_bfm("walker"))


def test_dict_observations_are_refused_with_a_hint() -> None:
    with pytest.raises(ValueError) as err:
        LatentActionWrapper(_shimmy(), tiny_bfm("walker"))
    msg = str(err.value)
    assert "Dict(" in msg and "Box(-inf, inf, (24,), float32)" in msg
    assert "DMCFlattenObservation" in msg


def test_mismatched_shimmy_env_names_both_spaces() -> None:
    with pytest.raises(ValueError) as err:
        LatentActionWrapper(DMCFlattenObservation(_shimmy("cheetah")), tiny_bfm("walker"))
    msg = str(err.value)
    assert "(17,)" in msg and "(24,)" in msg
