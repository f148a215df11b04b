"""SB3's SAC and PPO train on the latent-action env unchanged (a short real run each)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from stable_baselines3 import PPO, SAC
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor


def _env(model_dirs, z_hold: int = 2) -> gym.Env:
    env = gym.make("bfm_gym/walker-run-latent-v0", model=str(model_dirs["walker"]),
                   z_hold=z_hold, max_inner_steps=100)  # fmt: skip
    return Monitor(env)


@pytest.mark.parametrize("algo", ["SAC", "PPO"])
def test_sb3_trains_in_latent_space(algo: str, model_dirs) -> None:
    env = _env(model_dirs)
    kwargs = {"policy_kwargs": {"net_arch": [32, 32]}, "seed": 0, "device": "cpu"}
    if algo == "SAC":
        agent = SAC(
            "MlpPolicy", env, learning_starts=100, batch_size=64, buffer_size=1000, **kwargs
        )
        steps = 300
    else:
        agent = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, **kwargs)
        steps = 256
    before = [p.detach().clone() for p in agent.policy.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent.learn(total_timesteps=steps)
    assert agent.num_timesteps >= steps
    assert any((a != b).any() for a, b in zip(before, agent.policy.parameters(), strict=True))
    action, _ = agent.predict(env.reset(seed=0)[0], deterministic=True)
    assert action.shape == (8,) and np.all(np.abs(action) <= 1)
    mean, _ = evaluate_policy(agent, env, n_eval_episodes=1)
    assert np.isfinite(mean)
