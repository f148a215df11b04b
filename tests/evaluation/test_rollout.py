"""Episode runners and the return summary of :mod:`bfm_gym.evaluation.rollout`."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from bfm_gym.evaluation.rollout import play_episode, rollout_returns, summarize


def _cartpole() -> gym.Env:
    return gym.wrappers.TimeLimit(gym.make("CartPole-v1").unwrapped, 30)


def test_play_episode_matches_the_batched_runner() -> None:
    def policy(obs: np.ndarray) -> np.ndarray:  # push towards the pole's lean
        return (np.asarray(obs)[..., 2] > 0).astype(np.int64)

    for seed in (0, 7):
        ret, steps = play_episode(_cartpole(), seed, lambda obs: int(policy(obs)))
        assert steps <= 30 and ret == float(steps)  # CartPole: +1 per step
        assert rollout_returns(_cartpole, policy, 1, seed=seed)[0] == ret


def test_play_episode_counts_the_env_steps_a_latent_step_holds() -> None:
    class Holds3(gym.Wrapper):
        def step(self, action):  # type: ignore[no-untyped-def]
            obs, r, term, trunc, info = self.env.step(action)
            return obs, r, term, trunc, {**info, "transitions": [None] * 3}

    ret, steps = play_episode(Holds3(_cartpole()), 0, lambda obs: 0)
    assert steps == 3 * int(ret)


def test_summarize_is_the_percentile_bootstrap_of_the_mean() -> None:
    r = np.array([3.0, 10.0, 4.5, 8.0, 1.0, 7.25])
    res = summarize("t", r, seed=3, z=[0.5])
    idx = np.random.default_rng(0).integers(0, r.size, (10_000, r.size))  # the documented resampling
    means = r[idx].mean(axis=1)
    assert res.ci95 == (round(float(np.quantile(means, 0.025)), 3), round(float(np.quantile(means, 0.975)), 3))
    assert res.mean == round(float(r.mean()), 3) and res.seed == 3 and res.extra == {"z": [0.5]}
    assert summarize("t", np.array([5.0]), seed=0).ci95 == (5.0, 5.0)
    nan = summarize("t", np.array([1.0, np.nan]), seed=0)
    assert np.isnan(nan.mean) and all(np.isnan(nan.ci95))


def test_rollout_returns_refuses_zero_episodes() -> None:
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        rollout_returns(_cartpole, lambda obs: obs, 0)
