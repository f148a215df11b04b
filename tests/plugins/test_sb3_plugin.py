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
    cfg.update({"hidden": 32} if "latent" in name else {"critic_hidden": 32})
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
