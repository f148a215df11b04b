"""ReLA (docs/algorithms.md#rela): real episodes through `adapt`, only z and the residual critic learn,
resume after an interrupt, config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit

from tiny_maze import without_wall_time

from bfm_gym.adapters.rela import ReLAAdapter, ReLAConfig
from bfm_gym.adapters.zero_shot import ZeroShotAdapter
from bfm_gym.envs import make_env
from bfm_gym.evaluation.zero_shot import InferenceSet
from bfm_gym.experiments import adapt
from bfm_gym.models import BFM
from bfm_gym.wrappers import LatentActionWrapper

TASK = {"domain": "point_mass_maze", "task": "reach_top_left", "goal": None}
KW = dict(task="reach_top_left", max_episode_steps=40, progress=False)
FAST = {"update_every": 1, "warmup_steps": 10, "batch_size": 32, "lr_z": 1e-2}


def test_rela_runs_real_episodes_through_adapt(model_dir: Path) -> None:
    res = adapt(str(model_dir), adapter="rela", episodes=2, seed=0, config=FAST, **KW)
    assert len(res.records) == 2 and all(np.isfinite(r["return"]) for r in res.records)
    assert [r["env_steps"] for r in res.records] == [40, 80]
    assert [r["labels_used"] for r in res.records] == [40, 80]  # online rewards observed
    assert [r["sim_steps"] for r in res.records] == [0, 0]
    assert res.records[1]["z_change"] > 0


@pytest.mark.parametrize("q_uses_z", [False, True])
def test_only_the_latent_and_the_residual_critic_learn(model_dir: Path, q_uses_z: bool) -> None:
    bfm = BFM.load(model_dir)
    samples = InferenceSet.load(model_dir)
    before = {k: v.clone() for k, v in bfm.model.state_dict().items()}
    rela = ReLAAdapter(bfm, TASK, {**FAST, "q_uses_z": q_uses_z}, seed=0, samples=samples)
    # z starts at the zero-shot latent
    zero_shot = ZeroShotAdapter(bfm, TASK, None, seed=0, samples=samples)
    np.testing.assert_allclose(rela.z, zero_shot.z, rtol=1e-6, atol=1e-6)
    z0 = rela.z.copy()
    critic0 = {k: v.clone() for k, v in rela.critic.state_dict().items()}
    target0 = {k: v.clone() for k, v in rela.critic_target.state_dict().items()}
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 30),
                              bfm, z_hold=1, action_map="raw")
    for ep in range(2):
        ret, steps = rela.run_episode(env, seed=ep)
        assert np.isfinite(ret) and steps == 30
    assert rela.updates == 60 - FAST["warmup_steps"] + 1  # one round per step after warm-up
    assert not np.allclose(rela.z, z0)
    assert np.isclose(np.linalg.norm(rela.z), np.sqrt(bfm.z_dim), rtol=1e-5)
    assert any(not torch.equal(critic0[k], v) for k, v in rela.critic.state_dict().items())
    assert any(not torch.equal(target0[k], v) for k, v in rela.critic_target.state_dict().items())
    after = bfm.model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"BFM weight {k} changed"
    assert all(not p.requires_grad for p in bfm.model.parameters())


def test_buffer_holds_the_residual_reward(model_dir: Path) -> None:
    bfm = BFM.load(model_dir)
    rela = ReLAAdapter(bfm, TASK, {"warmup_steps": 1000}, seed=0, samples=InferenceSet.load(model_dir))
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 10),
                              bfm, z_hold=1, action_map="raw")
    rela.run_episode(env, seed=0)
    data = rela.buffer.sample(torch.arange(rela.buffer.size))
    phi = bfm.phi(data["next_obs"].numpy())
    rewards = data["residual"].numpy() + phi @ rela.z_r.numpy()
    assert rela.buffer.size == 10 and rela.updates == 0  # still warming up
    assert np.all(rewards >= -1e-5) and np.all(rewards <= 1 + 1e-5)  # maze rewards lie in [0, 1]
    assert rela.labels_used == 10


def test_resume_equals_uninterrupted(model_dir: Path, tmp_path: Path) -> None:
    run = dict(adapter="rela", seed=3, config=FAST, **KW)
    full = adapt(str(model_dir), episodes=4, out=tmp_path / "a", **run)
    adapt(str(model_dir), episodes=2, out=tmp_path / "b", **run)  # "killed" after 2
    resumed = adapt(str(model_dir), episodes=4, out=tmp_path / "b", **run)
    assert without_wall_time(resumed.records) == without_wall_time(full.records)
    state = np.load(tmp_path / "b" / "state.npz")
    assert all(state[k].dtype != object for k in state.files)  # numpy arrays only


def test_critic_steps_fit_the_critic_more_per_latent_step(model_dir: Path) -> None:
    """``critic_steps=k``: k critic TD steps (k minibatches, k Polyak steps) per latent step."""
    bfm, samples = BFM.load(model_dir), InferenceSet.load(model_dir)

    def run(k: int) -> ReLAAdapter:
        rela = ReLAAdapter(bfm, TASK, {**FAST, "critic_steps": k}, seed=0, samples=samples)
        env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 20),
                                  bfm, z_hold=1, action_map="raw")
        rela.run_episode(env, seed=0)
        return rela

    one, three = run(1), run(3)
    steps = 20 - FAST["warmup_steps"] + 1
    assert one.updates == three.updates == steps
    q_steps = lambda r: int(r.q_optimizer.state_dict()["state"][0]["step"])  # noqa: E731
    z_steps = lambda r: int(r.z_optimizer.state_dict()["state"][0]["step"])  # noqa: E731
    assert (q_steps(one), z_steps(one)) == (steps, steps)
    assert (q_steps(three), z_steps(three)) == (3 * steps, steps)
    assert not np.allclose(one.learned_latent(), three.learned_latent())  # a different critic
    with pytest.raises(ValueError, match=r"ReLAConfig.critic_steps must be > 0"):
        ReLAConfig(critic_steps=0)


def test_f_weight_zero_climbs_the_critic_alone(model_dir: Path) -> None:
    """``f_weight=0``: z follows the residual critic only. The critic's output layer starts at
    zero, so before any critic step its gradient is zero and z stays; F's term moves it."""
    bfm, samples = BFM.load(model_dir), InferenceSet.load(model_dir)
    moved = {}
    for w in (0.0, 0.5, 1.0):
        rela = ReLAAdapter(bfm, TASK, {**FAST, "f_weight": w}, seed=0, samples=samples)
        env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 5),
                                  bfm, z_hold=1, action_map="raw")
        rela.run_episode(env, seed=0)  # 5 steps: still warming up, buffer filled
        z0 = rela.learned_latent().copy()
        rela._latent_step(rela._sample())
        moved[w] = float(np.abs(rela.learned_latent() - z0).max())
    assert moved[0.0] == 0.0
    assert moved[0.5] > 0 and moved[1.0] > 0
    with pytest.raises(ValueError, match=r"ReLAConfig.f_weight must be in \[0, 1\]"):
        ReLAConfig(f_weight=1.5)


def test_f_path_action_takes_the_gradient_through_the_action_alone(model_dir: Path) -> None:
    """``f_path="action"``: the same value of F's term, but its gradient in z is the one with
    F's latent input held fixed (the gradient check's ``path="action"``), not the full one."""
    from bfm_gym.evaluation.gradient_check import f_value

    bfm, samples = BFM.load(model_dir), InferenceSet.load(model_dir)
    obs = torch.rand(32, bfm.obs_dim) * 0.6 - 0.3
    grads, values = {}, {}
    for path in ("full", "action"):
        rela = ReLAAdapter(bfm, TASK, {**FAST, "f_path": path}, seed=0, samples=samples)
        z = torch.as_tensor(rela.learned_latent()).clone().requires_grad_(True)
        value, _ = rela.objective_terms(obs, z)
        (grads[path],) = torch.autograd.grad(value.mean(), z)
        values[path] = value.detach()
    assert torch.equal(values["full"], values["action"])
    z = torch.as_tensor(rela.learned_latent()).clone().requires_grad_(True)
    held = f_value(bfm, obs, z, rela.z_r, rela.config.pessimism, critic_z=z.detach().clone())
    (expected,) = torch.autograd.grad(held.mean(), z)
    torch.testing.assert_close(grads["action"], expected)
    assert not torch.allclose(grads["action"], grads["full"])
    with pytest.raises(ValueError, match=r"ReLAConfig\.f_path must be 'full' or 'action'"):
        ReLAConfig(f_path="both")


def test_best_episode_holds_z_per_episode_and_evaluates_the_best_played(model_dir: Path) -> None:
    bfm = BFM.load(model_dir)
    rela = ReLAAdapter(bfm, TASK, {**FAST, "select": "best_episode"}, seed=0,
                       samples=InferenceSet.load(model_dir))
    z0 = rela.z.copy()
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 30),
                              bfm, z_hold=1, action_map="raw")
    held, returns = [], []
    original_act = rela.act
    for ep in range(3):
        z_at_start = rela._z.detach().numpy().copy()
        acted: list[np.ndarray] = []
        rela.act = lambda obs, acted=acted: acted.append(original_act(obs).copy()) or acted[-1]
        ret, _ = rela.run_episode(env, seed=ep)
        rela.act = original_act
        assert all(np.array_equal(z, z_at_start) for z in acted)  # one latent per episode
        held.append(z_at_start)
        returns.append(ret)
    np.testing.assert_allclose(held[0], z0, rtol=1e-6, atol=1e-6)  # episode 1: the zero-shot z
    assert rela.updates == 90 - FAST["warmup_steps"] + 1  # learning went on during the episodes
    assert not np.allclose(rela._z.detach().numpy(), z0)
    assert rela.selection.returns == returns
    np.testing.assert_array_equal(rela.eval_z(), held[int(np.argmax(returns))])
    with pytest.raises(ValueError, match=r"ReLAConfig.select must be one of"):
        ReLAConfig(select="last")


def test_race_alternates_zero_shot_and_z_and_evaluates_the_one_ahead(model_dir: Path) -> None:
    bfm = BFM.load(model_dir)
    rela = ReLAAdapter(bfm, TASK, {**FAST, "select": "race", "select_window": 1}, seed=0,
                       samples=InferenceSet.load(model_dir))
    z0 = rela.z.copy()
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 30),
                              bfm, z_hold=1, action_map="raw")
    for ep in range(4):
        z_at_start = rela._z.detach().numpy().copy()
        rela.run_episode(env, seed=ep)
        np.testing.assert_array_equal(rela.selection.played[-1], z0 if ep % 2 == 0 else z_at_start)
    r = np.array(rela.selection.returns)
    ahead = r[3] > np.median(r[0::2])
    current = rela._z.detach().numpy()
    np.testing.assert_array_equal(rela.eval_z(), current if ahead else z0)


@pytest.mark.parametrize("select", ["best_episode", "race"])
def test_selection_resume_equals_uninterrupted(model_dir: Path, tmp_path: Path, select: str) -> None:
    run = dict(adapter="rela", seed=3, config={**FAST, "select": select}, **KW)
    full = adapt(str(model_dir), episodes=4, out=tmp_path / "a", **run)
    adapt(str(model_dir), episodes=2, out=tmp_path / "b", **run)
    resumed = adapt(str(model_dir), episodes=4, out=tmp_path / "b", **run)
    assert without_wall_time(resumed.records) == without_wall_time(full.records)


def test_config_errors_name_the_field(model_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"ReLAConfig.tau"):
        ReLAConfig(tau=0.0)
    with pytest.raises(ValueError, match=r"ReLAConfig.lr_z"):
        adapt(str(model_dir), adapter="rela", config={"lr_z": -1.0}, episodes=1, **KW)
    with pytest.raises(ValueError, match=r"ReLAConfig.warmup_steps"):
        ReLAConfig(warmup_steps=-1)
    with pytest.raises(ValueError, match="did you mean 'lr_q'"):
        ReLAConfig.from_dict({"lr_qq": 1.0})
    with pytest.raises(ValueError, match="needs dataset samples"):
        ReLAAdapter(BFM.load(model_dir), TASK, None, seed=0)
