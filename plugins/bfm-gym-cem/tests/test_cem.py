"""Tests of the cem plugin: registration, config, the search itself, runs and resume."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bfm_gym.experiments import adapt
from bfm_gym_cem.cem import CEMAdapter, CEMConfig

KW = dict(task="reach_top_left", max_episode_steps=40, progress=False)


def test_plugin_is_discovered_through_its_entry_point() -> None:
    try:
        importlib.metadata.distribution("bfm-gym-cem")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("bfm-gym-cem is not installed: run `pip install -e .` in plugins/bfm-gym-cem")
    from bfm_gym.plugins import load_plugins

    cls, plugin = load_plugins().adapters["cem"]
    assert cls is CEMAdapter and plugin == "cem"


def test_config_checks_values_and_names() -> None:
    with pytest.raises(ValueError, match="elites"):
        CEMConfig(population=4, elites=5)
    with pytest.raises(ValueError, match="did you mean 'population'"):
        CEMConfig.from_dict({"populaton": 4})
    assert CEMAdapter.needs_for(CEMConfig(init="random")).labels == "online"
    assert CEMAdapter.needs_for(CEMConfig()).labels == "dataset+online"


def test_search_moves_the_mean_towards_rewarding_latents(model_dir: Path) -> None:
    import bfm_gym

    bfm = bfm_gym.load(str(model_dir))
    target = np.asarray(bfm.sample_z(1, seed=123)[0])
    cem = CEMAdapter(bfm, {"domain": "point_mass_maze", "task": "reach_top_left"},
                     {"init": "random", "population": 16, "elites": 4, "segment_steps": 5}, seed=0)
    before = float(cem.z @ target)
    for _ in range(16 * 5 * 6):  # six generations, the reward is how well z aligns with target
        z = cem.act(np.zeros(4, np.float32))
        cem.observe(SimpleNamespace(reward=np.array([float(z @ target)])))
    assert cem.generation == 6 and cem.labels_used == 480
    assert float(cem.z @ target) > before + 1.0
    assert np.isclose(np.linalg.norm(cem.z), np.sqrt(bfm.z_dim), atol=1e-4)  # on the sphere


@pytest.mark.parametrize("segment", [20, 0])
def test_adapt_runs_and_resumes_exactly(model_dir: Path, tmp_path: Path, segment: int) -> None:
    cfg = {"population": 3, "elites": 1, "segment_steps": segment}
    full = adapt(str(model_dir), adapter="cem", episodes=4, seed=2, out=tmp_path / "a", config=cfg, **KW)
    assert [r["env_steps"] for r in full.records] == [40, 80, 120, 160]
    assert full.records[-1]["labels_used"] == 160
    assert any(r["z_change"] > 0 for r in full.records)  # a generation finished, the mean moved
    adapt(str(model_dir), adapter="cem", episodes=2, seed=2, out=tmp_path / "b", config=cfg, **KW)
    resumed = adapt(str(model_dir), adapter="cem", episodes=4, seed=2, out=tmp_path / "b", config=cfg, **KW)
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in full.records]
    assert [{k: v for k, v in r.items() if k != "wall_s"} for r in resumed.records] == strip
