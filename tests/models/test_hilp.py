"""HILP family: training (losses fall), exact resume, safe checkpoints, least-squares and goal
inference, goal sampling within episodes, config validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import bfm_gym
from bfm_gym.models import CheckpointError
from bfm_gym.models.hilp import GoalReplay, HILPConfig, HILPHandle, HILPModel, HILPTrainer
from bfm_gym.models.protocol import BFM
from hilp_testdata import point_walks


@pytest.fixture(scope="module")
def walks() -> dict[str, np.ndarray]:
    return point_walks()


@pytest.fixture(params=["off", "bf16"])
def config(request: pytest.FixtureRequest) -> HILPConfig:
    """The tiny preset in fp32 and under bf16 autocast (emulated on CPUs without native bf16),
    so both numeric paths run on every machine."""
    return HILPConfig.preset("point_mass_maze", "tiny", amp=request.param)


def trainer(config: HILPConfig, seed: int = 0) -> HILPTrainer:
    return HILPTrainer(config, 2, 2, device="cpu", seed=seed, threads=None)


def test_tiny_model_trains_and_its_losses_fall(walks, config) -> None:
    t = trainer(config)
    history = t.train(GoalReplay(**walks), 60, log_every=20, progress=False)
    first, last = history[0], history[-1]
    assert last["phi_loss"] < 0.8 * first["phi_loss"], (first, last)
    assert last["sf_loss"] < 0.8 * first["sf_loss"], (first, last)
    assert all(np.isfinite(v) for row in history for v in row.values())
    assert t.model.phi_mean.abs().sum() > 0  # the running feature mean moved


def test_bf16_autocast_is_close_to_fp32(walks) -> None:
    """Same seed, batches and noise: bf16 autocast follows the fp32 losses within 10 %, and the
    weights stay fp32."""
    tiny = HILPConfig.preset("point_mass_maze", "tiny")
    runs = {}
    for amp in ("off", "bf16"):
        t = trainer(tiny.replace(amp=amp))
        runs[amp] = t.train(GoalReplay(**walks), 60, log_every=20, progress=False)
        assert {p.dtype for p in t.model.parameters()} == {torch.float32}
    assert runs["bf16"][0]["phi_loss"] != runs["off"][0]["phi_loss"]  # bf16 really ran
    for fp32, bf16 in zip(runs["off"], runs["bf16"], strict=True):
        for key in ("phi_loss", "sf_loss", "actor_loss"):
            assert abs(fp32[key] - bf16[key]) < 0.1 * (1 + abs(fp32[key])), (key, fp32[key], bf16[key])


def test_goal_sampling_stays_in_the_episode_future() -> None:
    episode = np.repeat(np.arange(20), 30)  # 20 episodes of 30 transitions
    n = len(episode)
    ids = np.stack([np.arange(n), episode], 1).astype(np.float32)  # next_obs = (index, episode)
    replay = GoalReplay(ids, np.zeros((n, 1), np.float32), ids, episode=episode)
    g = torch.Generator().manual_seed(0)
    batch = replay.sample_goals(512, g, future=0.9, p_random_goal=0.0)
    i, j = batch.next_obs[:, 0].long(), batch.goal[:, 0].long()
    assert torch.equal(batch.next_obs[:, 1], batch.goal[:, 1])  # same trajectory
    assert bool((j >= i).all()) and bool((j > i).any()) and bool((j == i).any())  # s' or later
    last = (i // 30) * 30 + 29
    assert bool((j <= last).all())
    mixed = replay.sample_goals(4000, g, future=0.9, p_random_goal=0.5)
    other = (mixed.next_obs[:, 1] != mixed.goal[:, 1]).float().mean().item()
    assert 0.43 < other < 0.5  # random goals: half the batch, 19 in 20 of them elsewhere
    with pytest.raises(ValueError, match="not contiguous"):
        GoalReplay(ids[:4], ids[:4], ids[:4], episode=[0, 1, 0, 1])


def test_resume_is_exact(walks, config, tmp_path: Path) -> None:
    replay = GoalReplay(**walks)
    full = trainer(config)
    full.train(replay, 20, tmp_path / "a", checkpoint_every=10, log_every=10, progress=False)
    half = trainer(config)
    half.train(replay, 10, tmp_path / "b", checkpoint_every=10, log_every=10, progress=False)
    resumed = trainer(config)  # a fresh process would do the same: it finds step_10 in b
    resumed.train(replay, 20, tmp_path / "b", checkpoint_every=10, log_every=10, progress=False)
    for (k, v), (k2, v2) in zip(full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k
    for a, b in zip(full.target_successor.parameters(), resumed.target_successor.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="another config"):
        trainer(config.replace(expectile=0.7)).load_checkpoint(tmp_path / "b" / "checkpoints" / "step_000000020")


def test_a_checkpoint_from_before_the_speed_switches_resumes(walks, tmp_path: Path) -> None:
    """Checkpoints written before ``amp`` and ``fused_adam`` existed (no such keys) resume, the
    new fields at their defaults; a real difference in the config is still refused."""
    config = HILPConfig.preset("point_mass_maze", "tiny")
    replay = GoalReplay(**walks)
    trainer(config).train(replay, 10, tmp_path, checkpoint_every=10, log_every=10, progress=False)
    step = tmp_path / "checkpoints" / "step_000000010"
    for name, keys in (("trainer.json", ("config",)), ("config.json", ("model", "config"))):
        data = json.loads((step / name).read_text())
        cfg = data
        for key in keys:
            cfg = cfg[key]
        del cfg["amp"], cfg["fused_adam"]
        (step / name).write_text(json.dumps(data))
    resumed = trainer(config)
    resumed.train(replay, 12, tmp_path, checkpoint_every=10, log_every=2, progress=False)
    assert resumed.step == 12
    with pytest.raises(CheckpointError, match="expectile"):
        trainer(config.replace(expectile=0.7)).load_checkpoint(step)


def test_save_load_round_trip_is_exact(walks, config, tmp_path: Path) -> None:
    t = trainer(config)
    t.train(GoalReplay(**walks), 5, log_every=5, progress=False)
    bfm = t.snapshot()
    folder = bfm.save(tmp_path / "m")
    loaded = bfm_gym.load(folder)
    assert isinstance(loaded, HILPHandle) and isinstance(loaded, BFM)
    assert loaded.family == "bfm_gym.hilp" and loaded.config == config
    assert loaded.metadata.training_steps == 5
    obs = walks["obs"][:16]
    z = bfm.sample_z(16, seed=1)
    for name, args in (("act", (obs, z)), ("phi", (obs,)), ("psi", (obs, z)), ("goal_z", (obs, obs[::-1]))):
        assert np.array_equal(getattr(bfm, name)(*args), getattr(loaded, name)(*args)), name
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"]["config"]["expectille"] = 0.5
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="did you mean 'expectile'"):
        bfm_gym.load(folder)


def test_least_squares_inference_recovers_linear_reward_weights(config) -> None:
    torch.manual_seed(0)
    model = HILPModel(config, 2, 2)
    model.phi_mean.copy_(torch.randn(config.z_dim))
    bfm = HILPHandle(model)
    obs = np.random.default_rng(0).uniform(-1, 1, (500, 2)).astype(np.float32)
    w = np.random.default_rng(1).normal(size=config.z_dim).astype(np.float32)
    rewards = bfm.phi(obs) @ w  # a reward exactly linear in phi~
    np.testing.assert_allclose(bfm.infer_z(obs, rewards, project=False), w, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(bfm.infer_z(obs, rewards), np.sqrt(config.z_dim) * w / np.linalg.norm(w),
                               rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="at least z_dim"):
        bfm.infer_z(obs[:3], rewards[:3])


def test_goal_z_is_the_projected_feature_difference(config) -> None:
    bfm = HILPHandle(HILPModel(config, 2, 2))
    s, g = np.array([0.1, -0.2], np.float32), np.array([0.5, 0.5], np.float32)
    diff = bfm.phi(g) - bfm.phi(s)
    np.testing.assert_allclose(bfm.goal_z(g, s), np.sqrt(config.z_dim) * diff / np.linalg.norm(diff), rtol=1e-5)
    assert np.isclose(np.linalg.norm(bfm.goal_z(g)), np.sqrt(config.z_dim))


def test_config_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="did you mean 'hilp_gamma'"):
        HILPConfig.from_dict({"hilp_gama": 0.9})
    with pytest.raises(ValueError, match="expectile must be in"):
        HILPConfig(expectile=1.0)
    with pytest.raises(ValueError, match="amp must be one of"):
        HILPConfig(amp="fp16")  # type: ignore[arg-type]
    assert HILPConfig.preset("walker", "paper").hilp_gamma == 0.96
    assert HILPConfig.preset("cheetah", "paper").hilp_gamma == 0.98
    assert HILPConfig.preset("quadruped", "paper").q_loss is True


def test_goal_and_reward_latents_steer_the_trained_policy() -> None:
    """End to end on the point walks: phi, psi and pi trained together, then
    z = proj(phi(g) - phi(s)) recomputed every step drives the point to random goals
    (untrained or random actions stay ~1 away on average), and z inferred by least squares
    from a reward linear in the state (move along u) drives the point along u.

    The reward is a direction, not -||s' - g||: a distance to a point is far from linear in
    phi, its least-squares z steered to the goal with 400 updates on some seeds and not on
    others, and less often with more updates (goal latents kept improving)."""
    replay = GoalReplay(**point_walks(episodes=100, steps=100))
    config = HILPConfig.preset("point_mass_maze", "tiny", batch_size=128, z_dim=16, phi_hidden_dim=64,
                               sf_hidden_dim=64, actor_hidden_dim=64)
    t = HILPTrainer(config, 2, 2, device="cpu", seed=0, threads=None)
    rng = np.random.default_rng(1)
    start = rng.uniform(-0.9, 0.9, (100, 2)).astype(np.float32)
    goal = rng.uniform(-0.9, 0.9, (100, 2)).astype(np.float32)

    def final_distance(bfm: HILPHandle) -> float:
        s = start.copy()
        for _ in range(25):  # the dataset's dynamics: s' = clip(s + 0.2 a)
            s = np.clip(s + 0.2 * bfm.act(s, bfm.goal_z(goal, s)), -1, 1).astype(np.float32)
        return float(np.linalg.norm(s - goal, axis=1).mean())

    before = final_distance(t.snapshot())
    t.train(replay, 400, log_every=400, progress=False)
    bfm = t.snapshot()
    after = final_distance(bfm)
    assert np.linalg.norm(start - goal, axis=1).mean() > 0.9 and before > 0.6
    assert after < 0.3, (before, after)
    # zero-shot from rewards: least squares of r(s') = u . s' on dataset next states; the walls
    # are at +-1, so the most a start can gain along u is ~1 (axis) or ~1.4 (diagonal)
    next_obs = replay.next_obs.numpy()[::5]
    for u in ((1.0, 0.0), (0.0, -1.0), (-0.7071, 0.7071), (0.7071, 0.7071)):
        u = np.asarray(u, np.float32)
        z = bfm.infer_z(next_obs, next_obs @ u)
        s = start.copy()
        for _ in range(25):
            s = np.clip(s + 0.2 * bfm.act(s, z), -1, 1).astype(np.float32)
        gain = float((s @ u).mean() - (start @ u).mean())
        assert gain > 0.6, (u, gain)
