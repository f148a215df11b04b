"""Tests of the reward-free collector agents (bfm_gym.data.agents)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bfm_gym.data.agents import AGENTS, CollectorAgent, RNDAgent, make_agent

OBS_DIM, ACTION_DIM = 24, 6

# Small, fast settings; a registered agent missing here runs with its defaults.
SMALL_CONFIGS: dict[str, dict[str, Any]] = {
    "rnd": dict(
        hidden_dim=32,
        rnd_hidden_dim=32,
        rnd_rep_dim=16,
        batch_size=32,
        buffer_capacity=1_000,
        warmup_steps=40,
        update_every=10,
        updates_per_step=0.3,
        policy_delay=2,
    ),
    "stopgo": dict(velocity_index=OBS_DIM - ACTION_DIM),  # reads the last 6 entries as velocities
}
NAMES = sorted(AGENTS)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the suite shares the CPU, and results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class FakeEnv:
    """Deterministic dynamics ``s' = tanh(A s + B a)`` with 60-step episodes (truncated, never terminated)."""

    def __init__(self, obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM, horizon: int = 60):
        rng = np.random.default_rng(1234)
        self.A = (rng.standard_normal((obs_dim, obs_dim)) / np.sqrt(obs_dim)).astype(np.float32)
        self.B = rng.standard_normal((obs_dim, action_dim)).astype(np.float32)
        self.s0 = rng.standard_normal(obs_dim).astype(np.float32)
        self.horizon = horizon
        self.reset()

    def reset(self) -> np.ndarray:
        self.t = 0
        self.s = self.s0.copy()
        return self.s

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool]:
        self.s = np.tanh(self.A @ self.s + self.B @ action).astype(np.float32)
        self.t += 1
        return self.s, self.t >= self.horizon


def rollout(
    agent: CollectorAgent, env: FakeEnv, steps: int
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Runs ``steps`` env steps, continuing ``env``'s current episode; returns actions and metrics."""
    actions, metrics = [], []
    obs = env.s
    for _ in range(steps):
        if env.t == 0:
            agent.reset()
        action = agent.act(obs)
        actions.append(action)
        next_obs, truncated = env.step(action)
        metrics.append(agent.observe(obs, action, next_obs, False))
        obs = env.reset() if truncated else next_obs
    return np.stack(actions), metrics


def small_agent(name: str, seed: int = 0) -> CollectorAgent:
    return make_agent(name, OBS_DIM, ACTION_DIM, seed, **SMALL_CONFIGS.get(name, {}))


@pytest.mark.parametrize("name", NAMES)
def test_act_shape_dtype_bounds(name: str) -> None:
    agent = small_agent(name)
    assert agent.name == name
    actions, _ = rollout(agent, FakeEnv(), 150)
    assert actions.shape == (150, ACTION_DIM)
    assert actions.dtype == np.float32
    assert np.all(np.isfinite(actions))
    assert np.all(np.abs(actions) <= 1.0)
    assert actions.std() > 0.01, "actions should vary"


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_actions(name: str) -> None:
    a, metrics_a = rollout(small_agent(name, seed=3), FakeEnv(), 150)
    b, metrics_b = rollout(small_agent(name, seed=3), FakeEnv(), 150)
    c, _ = rollout(small_agent(name, seed=4), FakeEnv(), 150)
    np.testing.assert_array_equal(a, b)
    assert metrics_a == metrics_b
    assert not np.array_equal(a, c)


def test_ou_actions_are_temporally_correlated() -> None:
    actions, _ = rollout(small_agent("ou"), FakeEnv(horizon=10_000), 2_000)
    lag1 = np.mean([np.corrcoef(actions[:-1, i], actions[1:, i])[0, 1] for i in range(ACTION_DIM)])
    assert lag1 > 0.7
    uniform, _ = rollout(small_agent("random"), FakeEnv(horizon=10_000), 2_000)
    assert abs(np.corrcoef(uniform[:-1, 0], uniform[1:, 0])[0, 1]) < 0.1


@pytest.mark.parametrize("non_episodic", [True, False])
def test_rnd_trains_after_warmup(non_episodic: bool) -> None:
    agent = make_agent(
        "rnd", OBS_DIM, ACTION_DIM, 0, **{**SMALL_CONFIGS["rnd"], "non_episodic": non_episodic}
    )
    assert isinstance(agent, RNDAgent)
    _, metrics = rollout(agent, FakeEnv(), 100)
    updates = [i for i, m in enumerate(metrics) if m]
    # First update at step 40 (end of warm-up), then every 10 steps, 3 gradient steps each.
    assert updates == list(range(39, 100, 10))
    assert agent.num_updates == 3 * len(updates)
    assert set(metrics[-1]) == {"rnd_loss", "intrinsic_reward", "critic_loss", "q", "actor_loss"}
    assert all(np.isfinite(v) for v in metrics[-1].values())


def test_rnd_intrinsic_reward_decreases_on_revisited_state() -> None:
    agent = make_agent(
        "rnd", OBS_DIM, ACTION_DIM, seed=0,
        **{**SMALL_CONFIGS["rnd"], "rnd_hidden_dim": 64, "rnd_lr": 1e-3, "updates_per_step": 1.0},
    )  # fmt: skip
    assert isinstance(agent, RNDAgent)
    rng = np.random.default_rng(0)
    revisited = rng.standard_normal(OBS_DIM).astype(np.float32)

    def feed(steps: int) -> None:
        # Every other transition lands on `revisited`, the others on fresh random states.
        for t in range(steps):
            obs = rng.standard_normal(OBS_DIM).astype(np.float32)
            next_obs = revisited if t % 2 == 0 else rng.standard_normal(OBS_DIM).astype(np.float32)
            agent.observe(obs, agent.act(obs), next_obs, False)

    feed(40)  # warm-up, ends with the first update (normaliser initialised)
    before = float(agent.intrinsic_reward(revisited, normalized=False))
    feed(600)
    after = float(agent.intrinsic_reward(revisited, normalized=False))
    novel = agent.intrinsic_reward(rng.standard_normal((256, OBS_DIM)).astype(np.float32))
    assert after < 0.2 * before
    assert agent.intrinsic_reward(revisited) < 0.2 * float(np.mean(novel))
    assert novel.shape == (256,) and novel.dtype == np.float32


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_resume_is_bit_exact(name: str, tmp_path: Path) -> None:
    agent, env = small_agent(name, seed=7), FakeEnv()
    rollout(agent, env, 95)  # mid-episode, mid update interval, past warm-up

    state = agent.state_dict()
    for key, value in state.items():
        assert isinstance(value, np.ndarray), key
        assert value.dtype != object, key
    np.savez(tmp_path / "agent.npz", **state)
    with np.load(tmp_path / "agent.npz", allow_pickle=False) as npz:
        loaded = dict(npz)
    assert loaded.keys() == state.keys()

    resumed = small_agent(name, seed=99)  # the seed is overwritten by the state
    resumed.load_state_dict(loaded)
    env_copy = copy.deepcopy(env)

    actions, metrics = rollout(agent, env, 120)
    resumed_actions, resumed_metrics = rollout(resumed, env_copy, 120)
    np.testing.assert_array_equal(actions, resumed_actions)
    assert metrics == resumed_metrics
    final, resumed_final = agent.state_dict(), resumed.state_dict()
    assert final.keys() == resumed_final.keys()
    for key in final:
        np.testing.assert_array_equal(final[key], resumed_final[key], err_msg=key)


def test_load_state_dict_rejects_other_agent_or_config() -> None:
    state = small_agent("rnd").state_dict()
    with pytest.raises(ValueError, match="meta/name"):
        small_agent("ou").load_state_dict(state)
    other = make_agent("rnd", OBS_DIM, ACTION_DIM, 0, **{**SMALL_CONFIGS["rnd"], "hidden_dim": 64})
    with pytest.raises(ValueError, match="meta/config"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="meta/obs_dim"):
        make_agent("ou", OBS_DIM + 1, ACTION_DIM, 0).load_state_dict(small_agent("ou").state_dict())


def test_unknown_agent_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown collector agent 'rdn'") as info:
        make_agent("rdn", OBS_DIM, ACTION_DIM, 0)
    for name in AGENTS:
        assert repr(name) in str(info.value)
    assert "did you mean 'rnd'" in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_config_key_lists_valid_fields(name: str) -> None:
    with pytest.raises(ValueError, match="unknown key") as info:
        make_agent(name, OBS_DIM, ACTION_DIM, 0, not_a_field=1)
    assert "valid fields" in str(info.value)
    if name == "rnd":
        with pytest.raises(ValueError, match=r"did you mean 'warmup_steps'\?.*batch_size"):
            make_agent(name, OBS_DIM, ACTION_DIM, 0, warmup_step=10)


@pytest.mark.parametrize(
    "bad",
    [
        {"update_every": 10, "updates_per_step": 0.25},  # 2.5 gradient steps per phase
        {"warmup_policy": "gaussian"},
        {"gamma": 1.0},
        {"hidden_dim": 0},
    ],
)
def test_rnd_config_rejects_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RNDConfig"):
        make_agent("rnd", OBS_DIM, ACTION_DIM, 0, **bad)


@pytest.mark.parametrize("name", NAMES)
def test_collects_on_dm_control_walker(name: str) -> None:
    suite = pytest.importorskip("dm_control.suite")
    env = suite.load("walker", "stand", task_kwargs={"random": 0})

    def flat(time_step: Any) -> np.ndarray:
        return np.concatenate([np.ravel(v) for v in time_step.observation.values()]).astype(
            np.float32
        )

    time_step = env.reset()
    obs = flat(time_step)
    agent = make_agent(
        name, obs.shape[0], env.action_spec().shape[0], 0, **SMALL_CONFIGS.get(name, {})
    )
    agent.reset()
    for _ in range(120):
        action = agent.act(obs)
        time_step = env.step(action)
        next_obs = flat(time_step)
        agent.observe(obs, action, next_obs, False)
        obs = next_obs
    assert obs.shape == (OBS_DIM,)
    assert np.all(np.isfinite(obs))
