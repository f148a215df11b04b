"""The plugin adapters (bfm-gym-cem, bfm-gym-sb3) on a Gymnasium MuJoCo env whose episodes end
early (Hopper-v5): one episode each, counting exactly the steps the episode lasted."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from bfm_gym.plugins import reset_plugins

    for dist in ("bfm-gym-cem", "bfm-gym-sb3"):
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{dist} is not installed; run `make install`.", pytrace=False)
    monkeypatch.setenv("BFM_GYM_LOAD_PLUGINS", "cem,sb3")
    reset_plugins()
    yield
    reset_plugins()


@pytest.mark.parametrize(("adapter", "config"), [
    ("cem", {"population": 3, "elites": 1, "segment_steps": 20}),
    ("sb3-td3-finetune", {}),
])
def test_plugin_adapter_runs_an_episode(plugins: None, hopper_model: Path, adapter: str,
                                        config: dict) -> None:
    from bfm_gym.experiments import adapt

    res = adapt(str(hopper_model), "native", adapter, episodes=1, max_episode_steps=50, seed=0,
                config=config, progress=False, zero_shot_episodes=0)
    row = res.records[0]
    assert 0 < row["env_steps"] <= 50 and row["labels_used"] == row["env_steps"]
