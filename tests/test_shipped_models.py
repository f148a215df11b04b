"""The pre-trained models shipped in the package: they load offline by name, their
model cards and zero-shot tables are complete, they are clearly better than acting at
random, and every built-in adapter runs on them."""

from __future__ import annotations

import json
from pathlib import Path

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

SHIPPED = ["point_mass_maze", "walker"]
"""Models this version ships; a model listed here and missing from the package fails."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_complete(name: str) -> None:
    assert name in shipped_models(), f"{name} is not shipped (package data missing?)"
    folder = resolve(name)
    assert folder.parent == Path(bfm_gym.__file__).parent / "pretrained"
    files = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "inference_samples.safetensors",
            "MODEL_CARD.md", "zero_shot.json"} <= files
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 20 * 2**20, f"{name} is {size / 2**20:.1f} MiB, over the 20 MiB limit"
    bfm = bfm_gym.load(name)
    assert bfm.metadata.domain == name and bfm.metadata.training_steps > 0
    card = (folder / "MODEL_CARD.md").read_text()
    assert "bfm-gym pretrain" in card and "bfm-gym collect" in card
    report = json.loads((folder / "zero_shot.json").read_text())
    assert report["episodes_per_task"] >= 10 and report["floor"] == FLOORS[name]
    assert report["training_steps"] == bfm.metadata.training_steps
    for task, row in report["tasks"].items():  # the card's table is the JSON's
        assert f"| {task} | {row['mean']:.1f} |" in card


BEATS_RANDOM = {"point_mass_maze": 250.0, "walker": 300.0}
"""Per model: one seeded episode per task, the mean zero-shot return is above this and the
mean return of uniform random actions below it."""


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_beats_random_actions(name: str) -> None:
    bfm = bfm_gym.load(name)
    samples = InferenceSet.load(resolve(name))
    tasks = [t for t in list_tasks(name) if name != "point_mass_maze" or t.startswith("reach_")]
    results = evaluate_zero_shot(bfm, name, tasks, samples, episodes=1, seed=0)
    zero_shot = float(np.mean([r.mean for r in results.values()]))
    rng = np.random.default_rng(0)
    random_returns = []
    for task in tasks:
        env = make_env(name, task)
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
