"""Built-in adapters: protocol conformance, real short episodes through the latent
wrapper, resume state, SB3's evaluate_policy, and registration through the hook."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.wrappers import TimeLimit

from bfm_gym.adapters.base import Adapter, AdapterConfig, AdapterNeeds
from bfm_gym.adapters.opti import OptiAdapter
from bfm_gym.adapters.zero_shot import ZeroShotAdapter
from bfm_gym.envs import make_env
from bfm_gym.evaluation.zero_shot import InferenceSet
from bfm_gym.models import BFM, FBConfig, FBModel, ModelMetadata
from bfm_gym.plugins import load_plugins
from bfm_gym.wrappers import LatentActionWrapper

TASK = {"domain": "point_mass_maze", "task": "reach_top_left"}


@pytest.fixture(scope="module")
def bfm() -> BFM:
    import torch

    torch.manual_seed(0)
    model = FBModel(FBConfig.preset("point_mass_maze", "tiny"), obs_dim=4, action_dim=2)
    rng = np.random.default_rng(0)
    model.finalize(torch.as_tensor(rng.uniform(-0.3, 0.3, (512, 4)), dtype=torch.float32))
    return BFM(model, ModelMetadata(domain="point_mass_maze"))


@pytest.fixture(scope="module")
def samples() -> InferenceSet:
    env = make_env("point_mass_maze")
    obs, states = [], []
    rng = np.random.default_rng(0)
    for ep in range(4):
        env.reset(seed=ep)
        # start on the target sometimes, so the sparse reach reward appears in the samples
        state = env.get_state()
        state[1:3] = (-0.15 + 0.01 * ep, 0.15)
        env.set_state(state)
        for _ in range(300):
            o, *_ = env.step(rng.uniform(-0.2, 0.2, 2))
            obs.append(o)
            states.append(env.get_state())
    return InferenceSet("point_mass_maze", np.stack(obs), np.stack(states))


def make(bfm: BFM, name: str, samples: InferenceSet, **config) -> Adapter:
    if name == "zero-shot":
        return ZeroShotAdapter(bfm, TASK, config, seed=0, samples=samples)
    return OptiAdapter(bfm, TASK, config, seed=0)


def run_episodes(adapter: Adapter, bfm: BFM, episodes: int = 2, steps: int = 60) -> list[float]:
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), steps),
                              bfm, z_hold=1, action_map="raw")
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        adapter.on_episode_start(obs)
        total, done = 0.0, False
        while not done:
            z = adapter.act(obs)
            obs, r, term, trunc, info = env.step(z)
            adapter.observe(info["transitions"])
            total += float(r)
            done = term or trunc
        adapter.on_episode_end(total)
        returns.append(total)
    return returns


def test_builtin_adapters_register_through_the_hook() -> None:
    adapters = load_plugins().adapters
    assert adapters["zero-shot"] == (ZeroShotAdapter, "bfm_gym")
    assert adapters["opti"] == (OptiAdapter, "bfm_gym")


@pytest.mark.parametrize("name", ["zero-shot", "opti"])
def test_protocol_and_real_episodes(bfm: BFM, samples: InferenceSet, name: str) -> None:
    cls = load_plugins().adapters[name][0]
    assert issubclass(cls, Adapter) and isinstance(cls.needs, AdapterNeeds)
    assert issubclass(cls.config_class, AdapterConfig)
    adapter = make(bfm, name, samples)
    returns = run_episodes(adapter, bfm)
    assert len(returns) == 2 and all(np.isfinite(returns))
    z = adapter.act(np.zeros(4, np.float32))
    assert z.shape == (bfm.z_dim,) and np.isclose(np.linalg.norm(z), np.sqrt(bfm.z_dim), rtol=1e-4)


def test_opti_state_dict_resumes_identically(bfm: BFM, samples: InferenceSet) -> None:
    a = make(bfm, "opti", samples)
    run_episodes(a, bfm, episodes=1)
    b = make(bfm, "opti", samples)
    b.load_state_dict(a.state_dict())
    obs = np.array([0.1, -0.1, 0.0, 0.0], np.float32)
    np.testing.assert_array_equal(a.act(obs), b.act(obs))
    np.testing.assert_array_equal(a.bandit.w_hat(), b.bandit.w_hat())
    assert a.bandit.updates == 60


def test_opti_ts_mode_and_config_errors(bfm: BFM, samples: InferenceSet) -> None:
    ts = make(bfm, "opti", samples, mode="ts")
    run_episodes(ts, bfm, episodes=1, steps=20)
    with pytest.raises(ValueError, match="did you mean 'beta'"):
        make(bfm, "opti", samples, betta=1.0)
    with pytest.raises(ValueError, match="mode"):
        make(bfm, "opti", samples, mode="greedy")


def test_evaluate_policy_runs_on_an_adapter(bfm: BFM, samples: InferenceSet) -> None:
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    adapter = make(bfm, "zero-shot", samples)
    env = Monitor(LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 30),
                                      bfm, action_map="raw"))
    mean, std = evaluate_policy(adapter, env, n_eval_episodes=2)
    assert np.isfinite(mean) and np.isfinite(std)
