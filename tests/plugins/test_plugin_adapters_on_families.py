"""The adapters of the packaged plugins (bfm-gym-cem, bfm-gym-sb3), loaded through their real
entry points, run on a tiny model of every registered family."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tiny_maze import write_tiny_maze_model

from bfm_gym.models.registry import families

PLUGINS = {"cem": "bfm-gym-cem", "sb3": "bfm-gym-sb3"}


@pytest.fixture(scope="module", params=sorted(families()))
def family_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    starts = [(-0.15, 0.15), (-0.15, 0.145)]
    return write_tiny_maze_model(tmp_path_factory.mktemp(request.param) / "m", starts, steps=100,
                                 family=request.param)


@pytest.mark.parametrize("entry_point", sorted(PLUGINS))
def test_plugin_adapters_run_on_every_family(entry_point: str, family_model: Path,
                                             load_only: Callable[[str, str], None]) -> None:
    from bfm_gym.experiments import adapt
    from bfm_gym.plugins import load_plugins

    load_only(entry_point, PLUGINS[entry_point])
    mine = [name for name, (_cls, plugin) in load_plugins().adapters.items() if plugin == entry_point]
    assert mine
    for name in mine:
        res = adapt(str(family_model), adapter=name, task="reach_top_left", episodes=1, seed=0,
                    max_episode_steps=30, progress=False, zero_shot_episodes=0)
        assert len(res.records) == 1 and np.isfinite(res.records[0]["return"]), name
