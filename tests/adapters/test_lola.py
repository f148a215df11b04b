"""LoLA (docs/algorithms.md#lola): the leave-one-out gradient, real episodes and exact budget
accounting through `adapt`, resume after an interrupt, the need for state resets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit

from tiny_maze import without_wall_time

from bfm_gym.adapters.lola import LoLAAdapter, LoLAConfig, antithetic_gradient, loo_gradient
from bfm_gym.adapters.zero_shot import ZeroShotAdapter
from bfm_gym.envs import make_env
from bfm_gym.evaluation.zero_shot import InferenceSet
from bfm_gym.experiments import adapt
from bfm_gym.models import BFM
from bfm_gym.wrappers import LatentActionWrapper

TASK = {"domain": "point_mass_maze", "task": "reach_top_left", "goal": None}
KW = dict(task="reach_top_left", max_episode_steps=40, progress=False)
SMALL = {"update_every": 20, "k": 3, "horizon": 5, "select": "mu"}  # the paper's rule; the other modes below


def make(model_dir: Path, sim_steps: int = 1000, **config) -> LoLAAdapter:
    sim = TimeLimit(make_env("point_mass_maze", "reach_top_left"), sim_steps)
    return LoLAAdapter(BFM.load(model_dir), TASK, {**SMALL, **config}, seed=0,
                       samples=InferenceSet.load(model_dir), sim=sim)


def test_loo_gradient_matches_explicit_loops() -> None:
    rng = np.random.default_rng(0)
    k, d, sigma = 4, 3, 0.3
    mu = rng.normal(size=d)
    z = mu + sigma * rng.normal(size=(k, d))
    returns = rng.normal(size=k)
    expected = np.zeros(d)
    for i in range(k):
        baseline = sum(returns[j] for j in range(k) if j != i) / (k - 1)
        for c in range(d):
            expected[c] += (returns[i] - baseline) * (z[i, c] - mu[c]) / sigma**2 / k
    np.testing.assert_allclose(loo_gradient(returns, z, mu, sigma), expected, rtol=1e-12)
    # equal returns carry no signal; the baseline removes any constant
    assert np.allclose(loo_gradient(np.full(k, 5.0), z, mu, sigma), 0.0)
    np.testing.assert_allclose(loo_gradient(returns + 7.0, z, mu, sigma), expected, rtol=1e-9)


def test_antithetic_gradient_is_exact_for_a_linear_return_and_ignores_constants() -> None:
    rng = np.random.default_rng(1)
    d, sigma = 5, 0.2
    a, mu = rng.normal(size=d), rng.normal(size=d)
    eps = np.sqrt(d) * np.eye(d)  # an orthogonal design: E[eps eps^T] = I holds exactly
    z = np.concatenate([mu + sigma * eps, mu - sigma * eps])
    returns = z @ a + 3.0
    np.testing.assert_allclose(antithetic_gradient(returns, eps, sigma), a, rtol=1e-12)
    # a quadratic term is even in eps: it cancels within each pair
    q = np.concatenate([returns[:d], returns[d:]]) + np.sum((z - mu) ** 2, axis=1)
    np.testing.assert_allclose(antithetic_gradient(q, eps, sigma), a, rtol=1e-12)
    # explicit loop on random directions
    eps = rng.normal(size=(3, d))
    r = rng.normal(size=6)
    expected = sum((r[j] - r[3 + j]) * eps[j] for j in range(3)) / (2 * sigma * 3)
    np.testing.assert_allclose(antithetic_gradient(r, eps, sigma), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="expected 6 returns for 3 pairs"):
        antithetic_gradient(r[:5], eps, sigma)


def test_antithetic_update_rolls_out_mirrored_pairs(model_dir: Path) -> None:
    lola = make(model_dir, k=4, antithetic=True)
    raw: list[np.ndarray] = []
    project = lola._project

    def spy(z: np.ndarray) -> np.ndarray:
        if np.ndim(z) == 2:  # the drawn latents (mu alone is projected as one row)
            raw.append(np.array(z, dtype=np.float64))
        return project(z)

    lola._project = spy  # type: ignore[method-assign]
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 40), lola.bfm,
                              z_hold=1, action_map="raw", record_state=True)
    mu_before = lola.mu.astype(np.float64)
    lola.run_episode(env, seed=0)
    assert lola.updates == 2 and len(raw) == 2
    assert lola.sim_steps == 2 * 4 * 5  # k=4 latents, H=5, as without mirroring
    first = raw[0]
    assert first.shape == (4, lola.bfm.z_dim)
    # rows 2, 3 are rows 0, 1 mirrored through mu: z+ + z- = 2 mu, and the two pairs differ
    np.testing.assert_allclose(first[:2] + first[2:], np.tile(2 * mu_before, (2, 1)), atol=1e-12)
    assert not np.allclose(first[0], first[1])
    assert not np.allclose(lola.mu, mu_before)
    with pytest.raises(ValueError, match="k must be even"):
        LoLAConfig(k=3, antithetic=True)


def test_budget_counts_every_lookahead_step(model_dir: Path) -> None:
    res = adapt(str(model_dir), adapter="lola", episodes=2, seed=0, config=SMALL, **KW)
    assert all(np.isfinite(r["return"]) for r in res.records)
    # per 40-step episode: 2 rounds (every 20 real steps) x 1 start x k=3 latents x H=5 steps
    per_episode_sim = 2 * 1 * 3 * 5
    assert [r["sim_steps"] for r in res.records] == [per_episode_sim, 2 * per_episode_sim]
    assert [r["env_steps"] for r in res.records] == [40 + 30, 2 * (40 + 30)]
    assert [r["labels_used"] for r in res.records] == [30, 60]  # lookahead rewards only
    assert res.records[0]["z_change"] > 0


def test_mu_starts_at_zero_shot_moves_and_stays_on_the_sphere(model_dir: Path) -> None:
    lola = make(model_dir, starts=2)
    bfm = lola.bfm
    before = {k: v.clone() for k, v in bfm.model.state_dict().items()}
    zero_shot = ZeroShotAdapter(bfm, TASK, None, seed=0, samples=InferenceSet.load(model_dir))
    np.testing.assert_allclose(lola.mu, zero_shot.z, rtol=1e-6, atol=1e-6)
    mu0 = lola.mu.copy()
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 40), bfm,
                              z_hold=1, action_map="raw", record_state=True)
    ret, steps = lola.run_episode(env, seed=0)
    assert np.isfinite(ret) and steps == 40
    assert lola.updates == 2 * 2 and lola.sim_steps == 4 * 3 * 5
    assert not np.allclose(lola.mu, mu0)
    assert np.isclose(np.linalg.norm(lola.mu), np.sqrt(bfm.z_dim), rtol=1e-5)
    np.testing.assert_array_equal(lola.act(np.zeros(4, np.float32)), lola.mu)
    for k, v in before.items():
        assert torch.equal(v, bfm.model.state_dict()[k])


def test_lookahead_stops_at_truncation_and_counts_those_steps(model_dir: Path) -> None:
    lola = make(model_dir, sim_steps=3)  # the sim truncates after 3 of the 5 lookahead steps
    env = make_env("point_mass_maze", "reach_top_left")
    env.reset(seed=0)
    z = lola.bfm.sample_z(2, seed=0)
    returns = lola.lookahead(env.get_state(), z)
    assert returns.shape == (2,) and np.all(np.isfinite(returns))
    assert lola.sim_steps == lola.labels_used == 2 * 3


def test_guard_plays_mu_only_while_its_paired_lookahead_beats_zero_shot(model_dir: Path) -> None:
    lola = make(model_dir, starts=3, guard=2, lr=0.5)
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 40), lola.bfm,
                              z_hold=1, action_map="raw", record_state=True)
    played = []
    for seed in range(3):
        lola.run_episode(env, seed=seed)
        played.append(lola.z.copy())
        recent = lola.guard_diffs[-2:]
        expected = lola.mu if np.mean(recent) > 0 else lola.z0
        np.testing.assert_array_equal(lola.z, expected)
    # one paired check per update: two more lookaheads (mu and z_0) of H=5 steps each
    assert len(lola.guard_diffs) == lola.updates == 3 * 2 * 3
    assert lola.sim_steps == lola.updates * (3 + 2) * 5
    np.testing.assert_allclose(lola.z0, ZeroShotAdapter(lola.bfm, TASK, None, seed=0, samples=InferenceSet.load(
        model_dir)).z, rtol=1e-6, atol=1e-6)
    # both branches run here: some episodes end on mu, some fall back to z_0
    fell_back = [bool(np.array_equal(z, lola.z0)) for z in played]
    assert any(fell_back) and not all(fell_back), (fell_back, lola.guard_diffs)
    with pytest.raises(ValueError, match=r"LoLAConfig.guard must be >= 0"):
        LoLAConfig(guard=-1)


def test_best_episode_holds_one_latent_per_episode_and_evaluates_the_best_played(model_dir: Path) -> None:
    lola = make(model_dir, select="best_episode", lr=0.5)
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 40), lola.bfm,
                              z_hold=1, action_map="raw", record_state=True)
    np.testing.assert_array_equal(lola.eval_z(), lola.z0)  # nothing played yet
    held, returns = [], []
    original_act = lola.act
    for seed in range(4):
        mu_at_start = lola.mu.copy()
        acted: list[np.ndarray] = []
        lola.act = lambda obs, acted=acted: acted.append(original_act(obs).copy()) or acted[-1]
        ret, _ = lola.run_episode(env, seed=seed)
        lola.act = original_act
        # one latent for the whole episode: mu as it was when the episode began
        assert all(np.array_equal(z, mu_at_start) for z in acted)
        held.append(mu_at_start)
        returns.append(ret)
    np.testing.assert_array_equal(held[0], lola.z0)  # the first episode plays the zero-shot z
    assert lola.updates == 4 * 2 and not np.allclose(lola.mu, lola.z0)  # mu kept learning
    assert lola.sim_steps == lola.updates * 3 * 5  # no extra env step
    assert lola.selection.returns == returns
    for z, expected in zip(lola.selection.played, held, strict=True):
        np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(lola.eval_z(), held[int(np.argmax(returns))])
    # a better later episode takes over; evaluation never holds an unplayed latent
    lola.on_episode_start(np.zeros(4, np.float32))
    lola.on_episode_end(max(returns) + 1.0)
    np.testing.assert_array_equal(lola.eval_z(), lola.mu)
    with pytest.raises(ValueError, match=r"LoLAConfig.select must be one of"):
        LoLAConfig(select="best")
    with pytest.raises(ValueError, match=r"guard works with select='mu' only"):
        LoLAConfig(select="best_episode", guard=2)
    with pytest.raises(ValueError, match=r"add select='mu'"):
        LoLAConfig(guard=2)  # the default select (race) decides what plays itself


def test_race_alternates_zero_shot_and_mu_and_evaluates_the_one_ahead(model_dir: Path) -> None:
    lola = make(model_dir, select="race", select_window=2, lr=0.5)
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 40), lola.bfm,
                              z_hold=1, action_map="raw", record_state=True)
    for seed in range(5):
        mu_at_start = lola.mu.copy()
        lola.run_episode(env, seed=seed)
        # even episodes hold the zero-shot latent, odd ones mu as it was at the episode's start
        np.testing.assert_array_equal(lola.selection.played[-1], lola.z0 if seed % 2 == 0 else mu_at_start)
    assert lola.updates == 5 * 2  # mu learned during every episode, whichever latent played
    r = np.array(lola.selection.returns)
    ahead = np.median(r[1::2][-2:]) > np.median(r[0::2])
    np.testing.assert_array_equal(lola.eval_z(), lola.mu if ahead else lola.z0)


@pytest.mark.parametrize("select", ["best_episode", "race"])
def test_selection_resume_equals_uninterrupted(model_dir: Path, tmp_path: Path, select: str) -> None:
    run = dict(adapter="lola", seed=3, config={**SMALL, "select": select, "lr": 0.5}, **KW)
    full = adapt(str(model_dir), episodes=4, out=tmp_path / "a", **run)
    adapt(str(model_dir), episodes=2, out=tmp_path / "b", **run)
    resumed = adapt(str(model_dir), episodes=4, out=tmp_path / "b", **run)
    assert without_wall_time(resumed.records) == without_wall_time(full.records)


def test_guarded_resume_equals_uninterrupted(model_dir: Path, tmp_path: Path) -> None:
    run = dict(adapter="lola", seed=3, config={**SMALL, "guard": 3}, **KW)
    full = adapt(str(model_dir), episodes=4, out=tmp_path / "a", **run)
    adapt(str(model_dir), episodes=2, out=tmp_path / "b", **run)
    resumed = adapt(str(model_dir), episodes=4, out=tmp_path / "b", **run)
    assert without_wall_time(resumed.records) == without_wall_time(full.records)


def test_resume_equals_uninterrupted(model_dir: Path, tmp_path: Path) -> None:
    run = dict(adapter="lola", seed=3, config=SMALL, **KW)
    full = adapt(str(model_dir), episodes=4, out=tmp_path / "a", **run)
    adapt(str(model_dir), episodes=2, out=tmp_path / "b", **run)  # "killed" after 2
    resumed = adapt(str(model_dir), episodes=4, out=tmp_path / "b", **run)
    assert without_wall_time(resumed.records) == without_wall_time(full.records)


def test_needs_state_resets(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="LoLA needs resets to simulator states"):
        LoLAAdapter(BFM.load(model_dir), TASK, SMALL, seed=0, samples=InferenceSet.load(model_dir))
    from bfm_gym.envs.dmc_env import DMCEnv

    monkeypatch.setattr(DMCEnv, "set_state", None)  # an env without state restore
    with pytest.raises(ValueError, match="needs resets to simulator states"):
        adapt(str(model_dir), adapter="lola", episodes=1, out=tmp_path / "x", **KW)
    assert not (tmp_path / "x").exists()  # refused before the first step


def test_config_errors_name_the_field(model_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"LoLAConfig\.sigma must be > 0"):
        LoLAConfig(sigma=0.0)
    with pytest.raises(ValueError, match=r"LoLAConfig.sigma"):
        adapt(str(model_dir), adapter="lola", config={"sigma": -1.0}, episodes=1, **KW)
    with pytest.raises(ValueError, match=r"LoLAConfig.k must be >= 2"):
        LoLAConfig(k=1)
    with pytest.raises(ValueError, match=r"LoLAConfig.horizon"):
        LoLAConfig(horizon=0)
    with pytest.raises(ValueError, match="did you mean 'sigma'"):
        LoLAConfig.from_dict({"sigmaa": 1.0})
