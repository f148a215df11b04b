"""The Stable-Baselines3 plugin package plugins/bfm-gym-sb3, loaded through its real entry point.

Short real fine-tuning runs: tiny untrained model, point_mass_maze, 2 episodes of 50 steps,
``learning_starts`` small so SB3 takes gradient steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ADAPTERS = ["sb3-td3-finetune", "sb3-sac-finetune", "sb3-sac-latent", "sb3-td3-latent",
            "sb3-ppo-latent"]
KW = dict(task="reach_top_left", max_episode_steps=50, progress=False)
TASK = {"domain": "point_mass_maze", "task": "reach_top_left", "goal": None}


def _config(name: str) -> dict:
    if "ppo" in name:
        return {"hidden": 32, "n_epochs": 2}
    cfg: dict = {"learning_starts": 10, "batch_size": 32}
    cfg.update({"hidden": 32} if "latent" in name else {"critic_hidden": 32, "warmup_steps": 20})
    return cfg


@pytest.fixture
def sb3(load_only: Callable[[str, str], None]) -> None:
    load_only("sb3", "bfm-gym-sb3")


def _adapter(name: str, model_dir: Path, config: dict, seed: int = 0) -> Any:
    import bfm_gym
    from bfm_gym.evaluation.zero_shot import InferenceSet
    from bfm_gym.plugins import load_plugins

    cls = load_plugins().adapters[name][0]
    return cls(bfm_gym.load(str(model_dir)), TASK, config, seed=seed,
               samples=InferenceSet.load(model_dir))


def test_sb3_adapters_are_listed_by_bfm_gym_plugins(sb3: None) -> None:
    env = {**os.environ, "BFM_GYM_LOAD_PLUGINS": "sb3"}
    proc = subprocess.run([sys.executable, "-m", "bfm_gym.cli.main", "plugins", "--hook",
                           "register_adapters"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert sorted(rows["sb3"]["registered"]["adapters"]) == sorted(ADAPTERS)
    assert not rows["sb3"]["errors"]


@pytest.mark.parametrize("critic", ["fresh", "bfm"])
@pytest.mark.parametrize("name", ["sb3-td3-finetune", "sb3-sac-finetune"])
def test_finetune_starts_as_the_bfm_actor(sb3: None, tiny_model_dir: Path, name: str,
                                          critic: str) -> None:
    import torch

    agent = _adapter(name, tiny_model_dir, {"critic": critic, "critic_hidden": 32})
    obs = np.random.default_rng(0).uniform(-0.3, 0.3, (32, 4)).astype(np.float32)
    mean = agent.bfm.act(obs, agent.z_r)
    action, _ = agent.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, mean, atol=1e-5)
    np.testing.assert_allclose(agent.act(obs[0]), mean[0], atol=1e-5)
    if critic == "bfm":  # one SB3 critic per F head: Q_k = c F_k(s, a, z_r)^T z_r
        qs = agent.model.critic(torch.as_tensor(obs), torch.as_tensor(mean))
        want = agent.q_scale * agent.bfm.q(obs, mean, agent.z_r, reduce="none")
        assert len(qs) == agent.bfm.ensemble
        np.testing.assert_allclose(torch.cat(qs, 1).detach().numpy().T, want, atol=1e-5)


@pytest.mark.parametrize("name", ["sb3-sac-latent", "sb3-td3-latent", "sb3-ppo-latent"])
def test_latent_agents_start_near_the_zero_shot_latent(sb3: None, tiny_model_dir: Path,
                                                       name: str) -> None:
    cfg = _config(name) | ({"n_steps": 50} if "ppo" in name else {})  # PPO: build now
    agent = _adapter(name, tiny_model_dir, cfg)
    z = agent.act(np.zeros(4, np.float32))
    assert np.linalg.norm(z - agent.z_r) < 0.1 * np.linalg.norm(agent.z_r)


@pytest.mark.parametrize("name", ADAPTERS)
def test_short_fine_tuning_changes_the_weights(sb3: None, tiny_model_dir: Path, tmp_path: Path,
                                                name: str) -> None:
    from bfm_gym.experiments import adapt

    res = adapt(str(tiny_model_dir), adapter=name, episodes=2, seed=0, out=tmp_path / "run",
                config=_config(name), eval_every=2, **KW)
    assert [r["env_steps"] for r in res.records] == [50, 100]
    assert res.records[-1]["labels_used"] == 100 and "eval_return" in res.records[-1]
    with np.load(tmp_path / "run" / "state.npz", allow_pickle=False) as st:
        trained = {k[len("sb3/policy/"):]: st[k] for k in st.files if k.startswith("sb3/policy/")}
        assert int(st["sb3/num_timesteps"]) == 100
    fresh = _adapter(name, tiny_model_dir, _config(name))
    if fresh.model is None:
        fresh.model = fresh._build(50)  # PPO: same seed, same initial weights as in the run
    initial = {k: v.detach().numpy() for k, v in fresh.model.policy.state_dict().items()}
    actor = [k for k in initial if k.startswith(("actor.", "mlp_extractor.policy", "action_net"))]
    assert actor and trained.keys() == initial.keys()
    changed = [k for k in actor if not np.array_equal(trained[k], initial[k])]
    assert changed, f"{name}: no actor weight changed after 100 steps"


@pytest.mark.parametrize("name", ["sb3-td3-finetune", "sb3-ppo-latent"])
def test_resume_through_adapt_keeps_every_record(sb3: None, tiny_model_dir: Path, tmp_path: Path,
                                                 name: str) -> None:
    from bfm_gym.experiments import adapt

    cfg = _config(name) | ({"critic": "bfm"} if "finetune" in name else {})
    adapt(str(tiny_model_dir), adapter=name, episodes=1, seed=3, out=tmp_path / "run", config=cfg, **KW)
    with np.load(tmp_path / "run" / "state.npz", allow_pickle=False) as st:
        assert int(st["sb3/num_timesteps"]) == 50
        if "finetune" in name:
            assert int(st["sb3/buffer/pos"]) == 50 and len(st["sb3/buffer/observations"]) == 50
    res = adapt(str(tiny_model_dir), adapter=name, episodes=3, seed=3, out=tmp_path / "run",
                config=cfg, **KW)
    assert [r["episode"] for r in res.records] == [0, 1, 2]
    assert [r["env_steps"] for r in res.records] == [50, 100, 150]
    lines = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 3
    with np.load(tmp_path / "run" / "state.npz", allow_pickle=False) as st:
        assert int(st["sb3/num_timesteps"]) == 150  # counters continued from the saved state


def _maze_env(bfm: Any, latent: bool = False) -> Any:
    from gymnasium.wrappers import TimeLimit

    from bfm_gym.envs.gym_env import env_info_of, make_task_env
    from bfm_gym.wrappers import LatentActionWrapper

    env = TimeLimit(make_task_env("point_mass_maze", "reach_top_left", env_info=env_info_of(bfm)), 50)
    return LatentActionWrapper(env, bfm, z_hold=1, action_map="raw") if latent else env


def _relative_rmse(critic: Any, obs: np.ndarray, act: np.ndarray, targets: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        qs = critic(torch.as_tensor(obs), torch.as_tensor(act))
    err = [np.mean((q.numpy()[:, 0] - targets[i % len(targets)]) ** 2) for i, q in enumerate(qs)]
    return float(np.sqrt(np.mean(err)) / targets.std())


@pytest.mark.parametrize("name", ["sb3-td3-finetune", "sb3-sac-finetune"])
def test_distilled_critic_reproduces_the_bfm_q(sb3: None, tiny_model_dir: Path, name: str) -> None:
    """``critic="distill"``: SB3 critic i ~ c F_i(s, a, z_r)^T z_r on pairs it was not fitted on.

    Tolerance: relative RMSE (RMSE / std of the targets) below 0.2 on a fresh batch of
    pairs (new actions, new noise) over the inference states. This fit reaches about 0.13;
    the undistilled critic of the same seed is at about 1 or far above it, so the bound
    separates a fit from none with room for other CPUs' rounding.
    """
    from bfm_gym_sb3.policies import distillation_pairs

    cfg = {"critic": "distill", "critic_hidden": 64, "batch_size": 128, "distill_steps": 300,
           "distill_lr": 1e-2}
    agent = _adapter(name, tiny_model_dir, cfg)
    rng = np.random.default_rng(123)
    obs, act, targets = distillation_pairs(agent.bfm, agent.z_r, agent.q_scale,
                                           np.asarray(agent._samples.next_obs), rng)
    assert targets.shape == (agent.bfm.ensemble, len(obs))
    np.testing.assert_allclose(targets, agent.q_scale * agent.bfm.q(obs, act, agent.z_r, reduce="none"),
                               rtol=1e-6)  # the targets are the BFM's Q in reward units
    fitted = _relative_rmse(agent.model.critic, obs, act, targets)
    assert agent.distill_error is not None and agent.distill_error < 0.2
    assert fitted < 0.2, f"distilled critic off by {fitted:.3f} of the targets' std"
    target = _relative_rmse(agent.model.critic_target, obs, act, targets)
    assert target == pytest.approx(fitted)  # the target critic starts as the fitted one
    unfitted = _adapter(name, tiny_model_dir, cfg | {"distill_steps": 0})
    assert _relative_rmse(unfitted.model.critic, obs, act, targets) > 0.9


@pytest.mark.parametrize("name", ["sb3-td3-finetune", "sb3-sac-finetune"])
def test_warmup_trains_the_critic_with_the_actor_frozen(sb3: None, tiny_model_dir: Path,
                                                        name: str) -> None:
    cfg = _config(name) | {"warmup_steps": 50}
    agent = _adapter(name, tiny_model_dir, cfg)
    actor0 = {k: v.clone() for k, v in agent.model.actor.state_dict().items()}
    critic0 = {k: v.clone() for k, v in agent.model.critic.state_dict().items()}
    env = _maze_env(agent.bfm)
    agent.run_episode(env, seed=0)  # steps 1-50: critic-only updates from step 11 on
    assert agent.model.num_timesteps == 50
    for k, v in agent.model.actor.state_dict().items():
        assert np.array_equal(v.numpy(), actor0[k].numpy()), f"{name}: actor {k} moved during warm-up"
    assert any(not np.array_equal(v.numpy(), critic0[k].numpy())
               for k, v in agent.model.critic.state_dict().items()), "the critic did not learn"
    agent.run_episode(env, seed=1)  # steps 51-100: the actor trains
    assert any(not np.array_equal(v.numpy(), actor0[k].numpy())
               for k, v in agent.model.actor.state_dict().items()), "the actor never unfroze"


@pytest.mark.parametrize("name", ["sb3-sac-latent", "sb3-td3-latent", "sb3-ppo-latent"])
def test_latent_agents_explore_around_the_zero_shot_latent(sb3: None, tiny_model_dir: Path,
                                                           name: str) -> None:
    """The latents played while learning (noise included) start near z_r, not at random.

    ``latent_noise=0.5`` puts the first latents at a cosine of about 1/sqrt(1.25) = 0.89
    with z_r; uniform latents average about 0 and the algorithms' own noise (std 0.2-1 per
    dimension against a mean action of norm 1) much less than 0.8.
    """
    import gymnasium as gym

    cfg = _config(name) | {"learning_starts": 0} if "ppo" not in name else _config(name)
    agent = _adapter(name, tiny_model_dir, cfg)
    played: list[np.ndarray] = []

    class Record(gym.Wrapper):
        def step(self, action: Any) -> Any:
            played.append(np.asarray(action, np.float32))
            return self.env.step(action)

    agent.run_episode(Record(_maze_env(agent.bfm, latent=True)), seed=0)
    first = np.stack(played[:20])
    cos = first @ agent.z_r / (np.linalg.norm(first, axis=1) * np.linalg.norm(agent.z_r))
    assert cos.mean() > 0.8, f"{name}: mean cosine {cos.mean():.2f} of the first latents with z_r"


@pytest.mark.parametrize("name", ADAPTERS)
def test_learning_rate_reaches_every_optimizer(sb3: None, tiny_model_dir: Path, name: str) -> None:
    """``--set learning_rate=X`` (the tuning grid's knob) is the rate SB3's optimizers use."""
    cfg = _config(name) | {"learning_rate": 1.234e-4} | ({"n_steps": 50} if "ppo" in name else {})
    agent = _adapter(name, tiny_model_dir, cfg)
    agent.run_episode(_maze_env(agent.bfm, latent="latent" in name), seed=0)
    policy = agent.model.policy
    opts = [o for o in (getattr(policy, "optimizer", None), getattr(policy.actor, "optimizer", None)
                        if hasattr(policy, "actor") else None,
                        getattr(getattr(policy, "critic", None), "optimizer", None)) if o is not None]
    assert opts
    assert {g["lr"] for o in opts for g in o.param_groups} == {1.234e-4}


def test_anchor_is_td3_plus_bc_around_the_bfm_policy(sb3: None, tiny_model_dir: Path) -> None:
    """``anchor=w``: the actor's objective is ``Q_1 - w mean|Q_1| mean_j (a_j - pi_j(s, z_r))^2``.

    At the BFM policy's own actions the pull is 0 (the objective is ``Q_1`` exactly); 0.3 away
    in every action dimension it is ``w mean|Q_1| 0.09``; the critic's ``forward`` (TD targets
    and the critic loss) is the same with and without the anchor.
    """
    import torch

    plain = _adapter("sb3-td3-finetune", tiny_model_dir, _config("sb3-td3-finetune"))
    anchored = _adapter("sb3-td3-finetune", tiny_model_dir, _config("sb3-td3-finetune") | {"anchor": 0.4})
    obs = torch.as_tensor(np.asarray(plain._samples.next_obs[:64], np.float32))
    z = torch.as_tensor(plain.z_r).expand(len(obs), -1)
    with torch.no_grad():
        ref = plain.bfm.model.actor(obs, z)
        away = (ref + 0.3).clamp(-1, 1)
        for a in (ref, away):
            q_plain = [q.numpy() for q in plain.model.critic(obs, a)]
            q_anch = [q.numpy() for q in anchored.model.critic(obs, a)]
            for qp, qa in zip(q_plain, q_anch, strict=True):
                np.testing.assert_array_equal(qp, qa)
        q1 = plain.model.critic.q1_forward(obs, ref)
        np.testing.assert_array_equal(anchored.model.critic.q1_forward(obs, ref).numpy(), q1.numpy())
        q1_away = plain.model.critic.q1_forward(obs, away)
        pull = ((away - ref) ** 2).mean(-1, keepdim=True)
        expected = q1_away - 0.4 * q1_away.abs().mean() * pull
        np.testing.assert_allclose(anchored.model.critic.q1_forward(obs, away).numpy(),
                                   expected.numpy(), rtol=1e-5, atol=1e-6)
        assert float(pull.min()) > 0.01  # the actions really were away from the policy
    assert not any("anchor" in k for k in anchored.model.critic.state_dict())  # rebuilt, not saved


def test_anchor_keeps_the_fine_tuned_actor_near_the_bfm_policy(sb3: None, tiny_model_dir: Path) -> None:
    """Real TD3 updates (two 50-step episodes, the actor trains from step 21): with a strong
    anchor the actor's actions on the inference states move less than half as far from the
    BFM policy's as without it (same seed, same start states)."""
    import torch

    shifts = {}
    for w in (0.0, 10.0):
        agent = _adapter("sb3-td3-finetune", tiny_model_dir,
                         _config("sb3-td3-finetune") | {"anchor": w, "learning_rate": 3e-3})
        obs = np.asarray(agent._samples.next_obs[:128], np.float32)
        before = np.stack([agent.act(o) for o in obs])
        env = _maze_env(agent.bfm)
        for seed in (0, 1):
            agent.run_episode(env, seed=seed)
        with torch.no_grad():
            after = np.stack([agent.act(o) for o in obs])
        shifts[w] = float(np.abs(after - before).mean())
    assert shifts[0.0] > 0.01, f"the plain actor barely moved ({shifts[0.0]:.4f}): nothing to compare"
    assert shifts[10.0] < 0.5 * shifts[0.0], shifts


@pytest.mark.parametrize(("fields", "word"), [({"anchor": -0.1}, "anchor"),
                                               ({"anchor": float("nan")}, "anchor"),
                                               ({"anchor": 0.4, "critic": "fresh"}, "critic='bfm'")])
def test_anchor_config_errors_name_the_fix(fields: dict, word: str) -> None:
    from bfm_gym_sb3.adapters import TD3FinetuneConfig

    with pytest.raises(ValueError, match=word):
        TD3FinetuneConfig.from_dict(fields)
