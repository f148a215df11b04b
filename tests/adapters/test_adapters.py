"""Adapters: the protocol checked on every registered adapter (the built-ins and those of the
plugin packages in plugins/), real short episodes through the latent wrapper, resume state,
SB3's evaluate_policy, and registration through the hook."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

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
from tiny_maze import without_wall_time

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


def _repo_plugin_entry_points() -> list[str]:
    """Entry-point names of the plugin packages in plugins/ (read from their pyproject.toml)."""
    names = []
    for pyproject in sorted((Path(__file__).parents[2] / "plugins").glob("*/pyproject.toml")):
        section = re.search(r'\[project\.entry-points\."bfm_gym"\]\n(.*?)(?:\n\[|\Z)',
                            pyproject.read_text(), re.S)
        if section:
            names += re.findall(r"^([A-Za-z0-9_.-]+)\s*=", section.group(1), re.M)
    return names


PLUGINS = ",".join(_repo_plugin_entry_points())


def _registered_adapters() -> list[str]:
    """Every adapter registered with the built-ins and the repository's plugins loaded."""
    from bfm_gym.plugins import reset_plugins

    before = os.environ.get("BFM_GYM_LOAD_PLUGINS")
    os.environ["BFM_GYM_LOAD_PLUGINS"] = PLUGINS
    reset_plugins()
    try:
        return sorted(load_plugins().adapters)
    finally:
        if before is None:
            os.environ.pop("BFM_GYM_LOAD_PLUGINS")
        else:
            os.environ["BFM_GYM_LOAD_PLUGINS"] = before
        reset_plugins()


ALL_ADAPTERS = _registered_adapters()

# Only what keeps a 2 x 30-step run short and lets each method update at least once; an
# adapter not listed here runs with its defaults.
SMALL = {
    "rela": {"warmup_steps": 10, "batch_size": 16},
    "lola": {"update_every": 15, "horizon": 5, "k": 4},
    "cem": {"population": 4, "segment_steps": 10},
    "sb3-ppo-latent": {"hidden": 32, "n_epochs": 2},
}
SMALL.update({n: {"learning_starts": 10, "batch_size": 32, "hidden": 32}
              for n in ("sb3-sac-latent", "sb3-td3-latent")})
SMALL.update({n: {"learning_starts": 10, "batch_size": 32, "critic_hidden": 32}
              for n in ("sb3-td3-finetune", "sb3-sac-finetune")})


@pytest.fixture
def repo_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The built-in adapters and those of plugins/ registered, through the real entry points."""
    from bfm_gym.plugins import reset_plugins

    monkeypatch.setenv("BFM_GYM_LOAD_PLUGINS", PLUGINS)
    reset_plugins()
    yield
    reset_plugins()


def test_the_registry_holds_the_builtins_and_the_plugin_packages() -> None:
    assert {"zero-shot", "opti", "rela", "lola"} <= set(ALL_ADAPTERS)
    assert {"cem", "sb3-td3-finetune"} <= set(ALL_ADAPTERS), PLUGINS  # plugins/ are installed


@pytest.mark.parametrize("name", ALL_ADAPTERS)
def test_protocol_and_real_episodes(repo_plugins: None, model_dir: Path, tmp_path: Path,
                                    name: str) -> None:
    from bfm_gym.experiments.adapt import adapt

    cls = load_plugins().adapters[name][0]
    assert issubclass(cls, Adapter) and cls.name == name
    assert issubclass(cls.config_class, AdapterConfig) and isinstance(cls.needs, AdapterNeeds)
    needs = cls.needs_for(cls.config_class.from_dict(SMALL.get(name, {})))
    assert isinstance(needs, AdapterNeeds) and needs.acts in ("latent", "env")
    assert needs.labels in ("online", "dataset", "dataset+online", "none")

    kw = dict(model=str(model_dir), task="reach_top_left", adapter=name, seed=0,
              config=SMALL.get(name, {}), max_episode_steps=30, zero_shot_episodes=0,
              out=tmp_path / name, progress=False)
    records = adapt(episodes=2, **kw).records
    assert [r["episode"] for r in records] == [0, 1]
    assert all(math.isfinite(r["return"]) for r in records)
    # every real step counted, and every step taken outside the episodes (lookahead) on top
    assert [r["env_steps"] - r["sim_steps"] for r in records] == [30, 60]
    if "online" not in needs.labels:
        assert records[-1]["labels_used"] == 0, "an adapter without online labels used some"
    with np.load(tmp_path / name / "state.npz", allow_pickle=False) as state:  # numpy only
        assert all(state[k].dtype != object for k in state.files)

    # resuming from state.npz gives the run an uninterrupted one would have given
    resumed = adapt(episodes=3, **kw).records
    straight = adapt(episodes=3, **{**kw, "out": tmp_path / f"{name}-straight"}).records
    assert without_wall_time(resumed) == without_wall_time(straight)
    assert json.loads((tmp_path / name / "summary.json").read_text())["episodes"] == 3


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


def test_opti_random_latent_start_then_selects_on_its_schedule(bfm: BFM, samples: InferenceSet) -> None:
    """explore_steps: random latents held explore_hold steps, their labels regressed, then
    selection every reselect_every steps counted from the end of the exploration."""
    a = make(bfm, "opti", samples, explore_steps=25, explore_hold=10, reselect_every=10)
    selected_at: list[int] = []
    select = a.select

    def spy(obs: np.ndarray) -> np.ndarray:
        selected_at.append(a.steps)
        return select(obs)

    a.select = spy  # type: ignore[method-assign]
    played = []
    obs = np.array([0.1, -0.1, 0.0, 0.0], np.float32)
    for _ in range(50):
        played.append(a.act(obs).copy())
        a.observe(_Labels(obs[None], np.ones(1)))
    assert selected_at == [25, 35, 45]
    changes = [t for t in range(1, 50) if not np.array_equal(played[t], played[t - 1])]
    assert {10, 20} <= set(changes) and not set(changes) & {1, 5, 11, 24}
    for t in (0, 10, 20):  # random latents on the sphere, each held for its 10 steps
        assert np.isclose(np.linalg.norm(played[t]), np.sqrt(bfm.z_dim), rtol=1e-5)
        assert all(np.array_equal(played[t], played[u]) for u in range(t, min(t + 10, 25)))
    assert a.bandit.updates == 50  # the exploration's labels are regressed too
    # resume in the middle of the exploration: the same latents afterwards
    b = make(bfm, "opti", samples, explore_steps=25, explore_hold=10, reselect_every=10)
    c = make(bfm, "opti", samples, explore_steps=25, explore_hold=10, reselect_every=10)
    for _ in range(13):
        b.act(obs)
    c.load_state_dict(b.state_dict())
    for _ in range(20):
        np.testing.assert_array_equal(b.act(obs), c.act(obs))
    # explore_steps=0 (the default) leaves the schedule as it was: a selection at step 0
    d = make(bfm, "opti", samples)
    assert np.array_equal(d.act(obs), make(bfm, "opti", samples).select(obs))
    with pytest.raises(ValueError, match="explore_hold >= 1"):
        make(bfm, "opti", samples, explore_hold=0)


def test_opti_is_evaluated_on_its_estimate_not_its_exploration(
    bfm: BFM, samples: InferenceSet
) -> None:
    """Paired evaluation holds OpTI's least-squares estimate proj(w_hat), not its UCB pick."""
    a = make(bfm, "opti", samples)
    obs = np.array([0.1, -0.1, 0.0, 0.0], np.float32)
    a.z = a.act(obs)
    np.testing.assert_array_equal(a.eval_z(), a.z)  # no label yet: w_hat has no direction
    rewards = samples.rewards(TASK["task"])
    assert rewards.max() > 0  # the samples start on the target: the fit has a direction
    a.observe(_Labels(samples.next_obs, rewards))
    expected = np.asarray(bfm.project(a.bandit.w_hat().astype(np.float32)))
    np.testing.assert_allclose(a.eval_z(), expected, rtol=1e-6)
    assert not np.allclose(a.eval_z(), a.act(obs))  # the exploration pick is another latent


class _Labels:
    """Reward-labelled next states, as the latent wrapper's ``info["transitions"]``."""

    def __init__(self, next_obs: np.ndarray, reward: np.ndarray) -> None:
        self.next_obs, self.reward = next_obs, reward

    def __len__(self) -> int:
        return len(self.reward)


def test_opti_fast_features_match_the_handle(bfm: BFM, samples: InferenceSet) -> None:
    """OpTI's fast phi/psi (FBFeatures) give the handle's features, and the adapter makes the
    same choices with them as through the handle (same candidates, same picks, same fit)."""
    from bfm_gym.models.fb.fast_policy import FBFeatures

    fast = FBFeatures.build(bfm)
    assert fast is not None
    obs = samples.next_obs[:40].astype(np.float32)
    phi = np.stack([fast.phi(o) for o in obs])
    np.testing.assert_allclose(phi, np.asarray(bfm.phi(obs)), rtol=0, atol=1e-5 * np.abs(phi).max())
    z = np.asarray(bfm.project(np.random.default_rng(1).normal(size=(16, bfm.z_dim)).astype(np.float32)))
    ref = np.asarray(bfm.psi(np.repeat(obs[:1], 16, axis=0), z))
    np.testing.assert_allclose(fast.psi(obs[0], z), ref, rtol=1e-4, atol=1e-4)
    assert fast.backend == "numpy"
    fast.backend = "torch"  # the same ops in torch
    np.testing.assert_allclose(fast.psi(obs[0], z), ref, rtol=1e-4, atol=1e-4)

    a = make(bfm, "opti", samples, reselect_every=1)
    b = make(bfm, "opti", samples, reselect_every=1)
    assert a._fast is not None
    b._fast = None  # the handle path
    rewards = samples.rewards(TASK["task"])
    for i in range(30):
        za, zb = a.act(obs[i]), b.act(obs[i])
        np.testing.assert_allclose(za, zb, rtol=0, atol=1e-5)
        labels = _Labels(samples.next_obs[i : i + 1], rewards[i : i + 1])
        a.observe(labels)
        b.observe(labels)
    np.testing.assert_allclose(a.bandit.w_hat(), b.bandit.w_hat(), rtol=1e-5, atol=1e-6)


def test_opti_applies_queued_labels_before_every_read(bfm: BFM, samples: InferenceSet) -> None:
    """observe queues labels; each selection (every 10 steps), eval_z and bandit read an
    estimate holding every label so far, equal to per-step updates with per-state phi."""
    from bfm_gym.adapters.bandit import LinearBandit
    from bfm_gym.models.fb.fast_policy import FBFeatures

    fast = FBFeatures.build(bfm)
    obs = samples.next_obs[:45].astype(np.float32)
    rewards = samples.rewards(TASK["task"])[:45]
    batch = fast.phi_many(obs)
    single = np.stack([fast.phi(o) for o in obs])
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-6 * np.abs(single).max())

    a = make(bfm, "opti", samples, reselect_every=10)
    reference = LinearBandit(bfm.z_dim)
    for i in range(45):
        a.act(obs[i])
        if i % 10 == 0:  # a selection: it must have seen every label observed before it
            assert not a._queued_obs
            np.testing.assert_allclose(a._bandit.w_hat(), reference.w_hat(), rtol=1e-5, atol=1e-7)
        a.observe(_Labels(obs[i : i + 1], rewards[i : i + 1]))
        reference.update(single[i], rewards[i])
    assert len(a._queued_obs) == 5  # steps 40-44 wait for the next read ...
    assert a.bandit.updates == 45 and not a._queued_obs  # ... which applies them
    np.testing.assert_allclose(a.bandit.w_hat(), reference.w_hat(), rtol=1e-5, atol=1e-7)

    with pytest.raises(ValueError, match="finite"):
        a.observe(_Labels(np.full((1, 4), np.nan, np.float32), np.zeros(1)))
    with pytest.raises(ValueError, match="finite rewards"):
        a.observe(_Labels(obs[:2], np.zeros(3)))
    assert not a._queued_obs  # rejected labels never reach the estimate


def test_opti_fast_features_fall_back_to_the_handle() -> None:
    """An auto-regressive B is not covered: FBFeatures declines and OpTI uses the handle."""
    import torch

    from bfm_gym.models.fb.fast_policy import FBFeatures

    torch.manual_seed(0)
    cfg = FBConfig.preset("point_mass_maze", "tiny", ar_blocks=2)
    ar = BFM(FBModel(cfg, obs_dim=4, action_dim=2), ModelMetadata(domain="point_mass_maze"))
    assert FBFeatures.build(ar) is None
    a = OptiAdapter(ar, TASK, {"reselect_every": 1}, seed=0)
    assert a._fast is None
    z = a.act(np.zeros(4, np.float32))
    assert z.shape == (ar.z_dim,) and np.isfinite(z).all()
