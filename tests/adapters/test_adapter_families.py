"""Every registered adapter runs on a tiny model of every registered model family, through
`adapt` and the latent wrapper (parametrised over the registries, not a hand-kept list)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_maze import write_tiny_maze_model

from bfm_gym.experiments import adapt
from bfm_gym.models.registry import families
from bfm_gym.plugins import load_plugins

FAMILIES = sorted(families())
ADAPTERS = sorted(load_plugins().adapters)
KW = dict(task="reach_top_left", max_episode_steps=30, progress=False, zero_shot_episodes=0)
SMALL = {"lola": {"k": 2, "horizon": 10, "update_every": 15},
         "rela": {"warmup_steps": 10, "batch_size": 16, "buffer_size": 1000}}


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    starts = [(-0.15, 0.15 - 0.005 * ep) for ep in range(2)]
    return write_tiny_maze_model(tmp_path_factory.mktemp(request.param) / "m", starts, steps=100,
                                 family=request.param)


def test_both_builtin_families_are_registered() -> None:
    assert {"fb", "hilp"} <= set(FAMILIES)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapter_runs_on_every_family(family_model: Path, adapter: str, tmp_path: Path) -> None:
    from bfm_gym.adapters.base import Adapter

    cls = load_plugins().adapters[adapter][0]
    fields = getattr(cls.config_class, "__dataclass_fields__", {})
    config = {k: v for k, v in SMALL.get(adapter, {}).items() if k in fields}
    assert issubclass(cls, Adapter)
    res = adapt(str(family_model), adapter=adapter, episodes=2, seed=0, out=tmp_path / "run",
                config=config, **KW)
    assert [r["episode"] for r in res.records] == [0, 1]
    assert all(np.isfinite(r["return"]) for r in res.records)
    assert (tmp_path / "run" / "state.npz").is_file()
