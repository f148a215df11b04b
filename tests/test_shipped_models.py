"""The pre-trained models shipped in the package: they load offline by name, their
model cards and zero-shot tables are complete, they are clearly better than acting at
random, and every built-in adapter runs on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bfm_gym
from bfm_gym.envs import list_tasks, make_env
from bfm_gym.evaluation.report import FLOORS
from bfm_gym.evaluation.zero_shot import InferenceSet, evaluate_zero_shot
from bfm_gym.experiments.adapt import adapt
from bfm_gym.plugins import load_plugins
from bfm_gym.pretrained import resolve, shipped_models

SHIPPED = {"point_mass_maze": "point_mass_maze", "walker": "walker", "quadruped": "quadruped",
           "cheetah": "cheetah", "point_mass_maze-hilp": "point_mass_maze", "walker-hilp": "walker",
           "walker-256": "walker"}
"""Models this version ships, name -> domain; a model listed here and missing from the package fails."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def assert_shipped_folder(name: str) -> Path:
    """Checks that ``name`` ships as package data with every file, under 20 MiB; returns its folder."""
    assert name in shipped_models(), f"{name} is not shipped (package data missing?)"
    folder = resolve(name)
    assert folder.parent == Path(bfm_gym.__file__).parent / "pretrained"
    files = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "inference_samples.safetensors",
            "MODEL_CARD.md", "zero_shot.json"} <= files
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 20 * 2**20, f"{name} is {size / 2**20:.1f} MiB, over the 20 MiB limit"
    return folder


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_is_complete(name: str) -> None:
    folder = assert_shipped_folder(name)
    bfm = bfm_gym.load(name)
    domain = SHIPPED[name]
    assert bfm.metadata.domain == domain and bfm.metadata.training_steps > 0
    card = (folder / "MODEL_CARD.md").read_text()
    assert "bfm-gym pretrain" in card and "bfm-gym collect" in card
    report = json.loads((folder / "zero_shot.json").read_text())
    assert report["episodes_per_task"] >= 10 and report["floor"] == FLOORS[domain]
    assert report.get("family", "bfm_gym.fb") == bfm.family  # cards from before families are FB
    assert report["training_steps"] == bfm.metadata.training_steps
    for task, row in report["tasks"].items():  # the card's table is the JSON's
        assert f"| {task} | {row['mean']:.1f} |" in card


BEATS_RANDOM = {"point_mass_maze": 250.0, "walker": 300.0, "cheetah": 150.0}
"""Per model: one seeded episode per task, the mean zero-shot return is above this and the
mean return of uniform random actions below it. ``quadruped`` is tested on latents instead
(:func:`test_shipped_quadruped_beats_random_latents`): one seeded episode of random actions
earns about 950 on stand when the body happens to start upright and near 0 otherwise, so a
single episode cannot rank it. ``point_mass_maze-hilp`` is absent: it ships
as the HILP half of the FB-vs-HILP comparison at FB's update budget, and its card says it
does not solve the maze at that budget (zero-shot mean 3.7)."""


def test_the_hilp_walker_model_has_the_fb_walker_budget() -> None:
    """The HILP half of the walker FB-vs-HILP comparison: same data command, same 115k updates
    as its FB half, the walker shipped until stop 40 (now ``walker-256``)."""
    hilp, fb = bfm_gym.load("walker-hilp"), bfm_gym.load("walker-256")
    assert hilp.family == "bfm_gym.hilp" and fb.family == "bfm_gym.fb"
    assert hilp.metadata.training_steps == fb.metadata.training_steps == 115_000
    card = (resolve("walker-hilp") / "MODEL_CARD.md").read_text()
    assert "bfm-gym collect --domain walker --agent rnd --episodes 1000 --seed 0" in card


def test_the_hilp_maze_model_ships_as_what_its_card_says() -> None:
    report = json.loads((resolve("point_mass_maze-hilp") / "zero_shot.json").read_text())
    assert report["family"] == "bfm_gym.hilp" and report["training_steps"] == 30_000
    assert report["floor_met"] is False and "NOT met" in (resolve("point_mass_maze-hilp") / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("name", sorted(BEATS_RANDOM))
def test_shipped_model_beats_random_actions(name: str) -> None:
    bfm = bfm_gym.load(name)
    samples = InferenceSet.load(resolve(name))
    domain = SHIPPED[name]
    tasks = [t for t in list_tasks(domain) if domain != "point_mass_maze" or t.startswith("reach_")]
    results = evaluate_zero_shot(bfm, domain, tasks, samples, episodes=1, seed=0)
    zero_shot = float(np.mean([r.mean for r in results.values()]))
    rng = np.random.default_rng(0)
    random_returns = []
    for task in tasks:
        env = make_env(domain, task)
        env.reset(seed=0)
        low, high = env.action_space.low, env.action_space.high
        random_returns.append(sum(float(env.step(rng.uniform(low, high))[1]) for _ in range(1000)))
        env.close()
    assert zero_shot > BEATS_RANDOM[name] > float(np.mean(random_returns)), (zero_shot, random_returns)


@pytest.mark.parametrize("adapter", ["zero-shot", "opti", "rela", "lola"])
def test_every_builtin_adapter_runs_on_the_shipped_maze(adapter: str) -> None:
    assert load_plugins().adapters[adapter][1] == "bfm_gym"
    result = adapt("point_mass_maze", "reach_top_left", adapter, episodes=2, seed=0,
                   max_episode_steps=150, progress=False)
    assert [r["episode"] for r in result.records] == [0, 1]
    assert all(np.isfinite(r["return"]) for r in result.records)
    assert result.records[-1]["env_steps"] >= 2 * 150  # lookahead steps come on top


GYM_SHIPPED = {"reacher": "Reacher-v5"}
"""Shipped models of Gymnasium envs: name -> the env id they were trained on."""


@pytest.mark.parametrize("name", sorted(GYM_SHIPPED))
def test_shipped_gym_env_model_is_complete(name: str) -> None:
    import gymnasium as gym

    env_id = GYM_SHIPPED[name]
    folder = assert_shipped_folder(name)
    bfm = bfm_gym.load(name)
    assert bfm.metadata.domain == env_id and bfm.metadata.training_steps > 0
    env_record = bfm.metadata.extra["env"]  # the env id, kwargs and spaces it was trained on
    assert env_record["id"] == env_id and env_record["kwargs"] == {}
    assert env_record["observation_space"].startswith("Box(") and "(10,)" in env_record["observation_space"]
    assert env_record["action_space"] == "Box(-1.0, 1.0, (2,), float32)"
    card = (folder / "MODEL_CARD.md").read_text()
    assert "bfm-gym pretrain" in card and "bfm-gym collect" in card
    report = json.loads((folder / "zero_shot.json").read_text())
    assert report["episodes_per_task"] >= 10 and report["training_steps"] == bfm.metadata.training_steps
    for task, row in report["tasks"].items():  # the card's table is the JSON's
        sac = "not measured yet" if row["sac"] is None else f"{row['sac']['mean']:.1f}"
        assert f"| {task} | {row['zero_shot']['mean']:.1f} | {sac} |" in card
    env = bfm_gym.wrap(gym.make(env_id), model=name)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (10,) and env.action_space.shape == (bfm.z_dim,)
    env.step(env.action_space.sample())
    env.close()


def _zero_shot_and_random_latents(name: str, task: str, make: Any) -> tuple[np.ndarray, np.ndarray]:
    """Returns of 3 seeded episodes of ``task`` with the model's zero-shot z, and of 3 with
    random latents of the same model (``make()`` builds the task's env)."""
    from bfm_gym.evaluation.rollout import rollout_returns
    from bfm_gym.evaluation.zero_shot import task_z

    bfm = bfm_gym.load(name)
    z_task = task_z(bfm, bfm.samples, task)

    def returns(zs: np.ndarray) -> np.ndarray:
        return rollout_returns(make, lambda obs: bfm.act(obs, zs[: len(obs)]), 3, seed=0)

    return returns(np.repeat(z_task[None], 3, axis=0)), returns(bfm.sample_z(3, seed=0))


def test_shipped_reacher_beats_random_latents() -> None:
    """Zero-shot z of one reach task against random latents, 3 seeded episodes each."""
    from bfm_gym.envs.gym_env import make_task_env
    from bfm_gym.envs.reacher_tasks import register_reacher_tasks

    register_reacher_tasks()
    zero_shot, random = _zero_shot_and_random_latents(
        "reacher", "reach_northwest", lambda: make_task_env("Reacher-v5", "reach_northwest"))
    assert zero_shot.mean() > 2 * random.mean() and zero_shot.min() > random.max(), (zero_shot, random)


def test_shipped_quadruped_beats_random_latents() -> None:
    """Zero-shot z of stand against random latents of the same model, 3 seeded episodes each
    (quadruped starts in a random orientation: the policy has to get up)."""
    zero_shot, random = _zero_shot_and_random_latents(
        "quadruped", "stand", lambda: make_env("quadruped", "stand"))
    assert zero_shot.mean() > 1.5 * random.mean(), (zero_shot, random)


def test_reacher_tasks_come_with_the_built_in_plugin() -> None:
    """The shipped reacher model's tasks reach the command line without any registration call."""
    import subprocess
    import sys

    code = ("from bfm_gym.envs import list_tasks; "
            "print(sorted(t for t in list_tasks('Reacher-v5') if t.startswith('reach_')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(["reach_northeast", "reach_northwest", "reach_southeast", "reach_southwest"])
