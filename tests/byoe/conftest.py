"""Fixtures of the bring-your-own-env tests: a small Hopper-v5 dataset (early terminations,
simulator states), tasks registered for Hopper-v5, and a tiny model pre-trained on the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from byoe_tasks import HOPPER, hopper_forward, hopper_height


@pytest.fixture(scope="session")
def hopper_tasks() -> list[str]:
    """Registers two Hopper-v5 tasks (one of each kind) and returns their names."""
    from bfm_gym.envs import register_task

    register_task(HOPPER, "height", hopper_height, "torso height", overwrite=True)
    register_task(HOPPER, "forward", hopper_forward, "forward velocity", overwrite=True)
    return ["height", "forward"]


@pytest.fixture(scope="session")
def hopper_data(tmp_path_factory: pytest.TempPathFactory, hopper_tasks: list[str]) -> Path:
    """600+ steps of random Hopper-v5 episodes (they end when the hopper falls), in 2 chunks."""
    from bfm_gym.data.collection import collect

    out = tmp_path_factory.mktemp("byoe") / "hopper"
    return collect(HOPPER, out, agent="random", steps=600, seed=0, chunk_episodes=1,
                   max_episode_steps=400, progress=False)


@pytest.fixture(scope="session")
def hopper_model(tmp_path_factory: pytest.TempPathFactory, hopper_data: Path) -> Path:
    """A tiny FB model pre-trained for a few updates on ``hopper_data`` (no evaluation)."""
    from bfm_gym.pretraining import pretrain

    out = tmp_path_factory.mktemp("byoe") / "hopper-model"
    return pretrain(hopper_data, out, config="tiny", updates=30, eval_every=0, checkpoint_every=30,
                    log_every=10, inference_samples=500, threads=1, progress=False)
