"""Reward-free collection on the real simulators: Minari output, resume, coverage, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bfm_gym.data import DatasetError, load_transitions, read_manifest
from bfm_gym.data.collection import collect
from bfm_gym.envs.relabel import Relabeler


def _minari_load(root: Path, dataset_id: str):
    import minari

    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        return minari.load_dataset(dataset_id)
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


@pytest.mark.parametrize("agent", ["random", "rnd"])
def test_collect_writes_minari_dataset_that_relabels(tmp_path: Path, agent: str) -> None:
    out = tmp_path / "maze"
    collect("point_mass_maze", out, agent=agent, episodes=2, seed=0, progress=False,
            agent_config={"warmup_steps": 500} if agent == "rnd" else None)
    manifest = read_manifest(out)
    assert manifest["episodes"] == 2 and manifest["steps"] == 2000
    ds = _minari_load(out, manifest["dataset_id"])
    assert ds.total_episodes == 2 and ds.total_steps == 2000
    ep = next(ds.iterate_episodes())
    assert ep.observations.shape == (1001, 4)
    assert ep.infos["state"].shape == (1001, manifest["state_size"])
    # The stored next-states relabel to the same rewards the env gives online.
    tr = load_transitions(out)
    assert len(tr) == 2000
    np.testing.assert_array_equal(tr.next_obs[:-1][tr.episode[:-1] == tr.episode[1:]],
                                  tr.obs[1:][tr.episode[:-1] == tr.episode[1:]])
    from bfm_gym.envs import make_env

    env = make_env("point_mass_maze", "reach_top_left")
    from bfm_gym.data.collection import episode_seed

    obs, _ = env.reset(seed=episode_seed(manifest["seed"], ep.id))
    np.testing.assert_array_equal(obs, ep.observations[0])
    online = [env.step(a)[1] for a in ep.actions[:200]]
    offline = Relabeler("point_mass_maze").rewards64(ep.infos["state"][1:201], "reach_top_left")
    np.testing.assert_array_equal(offline, online)
    report = json.loads((out / "coverage.json").read_text())
    assert set(report["tasks"]) >= {"reach_top_left", "reach_bottom_right"}
    # The maze's coverage axis (Domain.coverage) is its position: a share of the 20 x 20 grid.
    assert 0.0 < report["cells_visited_fraction"] <= 1.0 and "panel" not in report
    assert (out / "coverage.png").stat().st_size > 1000


@pytest.mark.parametrize("source,options", [
    ("point_mass_maze", dict(agent="rnd", episodes=3, seed=5,
                             agent_config={"warmup_steps": 300, "update_every": 50})),
    ("InvertedPendulum-v5", dict(agent="random", steps=120, seed=2, max_episode_steps=40)),  # a Gymnasium id
])
def test_interrupted_collection_resumes_identically(tmp_path: Path, source: str, options: dict) -> None:
    kwargs = dict(options, chunk_episodes=1, progress=False, coverage=False)
    ref = tmp_path / "ref"
    collect(source, ref, **kwargs)

    # Simulate a kill after the first chunk: run 1 chunk, then drop the finished
    # output, keeping only what the first chunk checkpointed.
    out = tmp_path / "out"
    import bfm_gym.data.collection as coll

    calls = {"n": 0}
    real = coll.save_npz_atomic

    def dying_save(path, arrays):
        real(path, arrays)
        if path.name.startswith("agent_"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt

    coll.save_npz_atomic = dying_save
    try:
        with pytest.raises(KeyboardInterrupt):
            collect(source, out, **kwargs)
    finally:
        coll.save_npz_atomic = real
    assert not out.exists(), "a killed collection must not leave a loadable dataset"
    partial = tmp_path / ".out.partial"
    # Killed after chunk 2's agent state was written but before its commit point.
    progress = json.loads((partial / "progress.json").read_text())
    assert progress["chunks_done"] == 1
    collect(source, out, **kwargs)
    a, b = load_transitions(ref), load_transitions(out)
    for key in ("obs", "action", "reward", "terminated", "next_state"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert not partial.exists()
    # Wall time of the interrupted part is kept, so the steps/s figure is honest.
    assert progress["seconds"] > 0
    assert read_manifest(out)["collect_seconds"] >= round(progress["seconds"], 2)  # the manifest rounds to 0.01 s


def test_collect_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Valid domains"):
        collect("walkr", tmp_path / "x", agent="random", episodes=1, progress=False)
    with pytest.raises(ValueError, match="random"):
        collect("walker", tmp_path / "x", agent="nope", episodes=1, progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"):
        collect("walker", tmp_path / "exists", agent="random", episodes=1, progress=False)


def test_foreign_and_corrupt_datasets_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_transitions(tmp_path / "missing")
    (tmp_path / "foreign").mkdir()
    with pytest.raises(DatasetError, match="not a bfm_gym dataset"):
        load_transitions(tmp_path / "foreign")
    out = tmp_path / "good"
    collect("point_mass_maze", out, agent="random", episodes=1, progress=False, coverage=False)
    manifest = out / "bfm_gym.json"
    text = manifest.read_text()
    manifest.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_transitions(out)
    manifest.write_text(text)
    hdf5 = out / json.loads(text)["dataset_id"] / "data" / "main_data.hdf5"
    data = hdf5.read_bytes()
    hdf5.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="sha256"):
        load_transitions(out)
    with pytest.raises(DatasetError, match=r"Cannot open|unreadable"):
        load_transitions(out, verify_hash=False)


def test_relative_output_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    collect("point_mass_maze", Path("rel") / "maze", agent="random", episodes=1, progress=False,
            coverage=False)
    assert len(load_transitions(Path("rel") / "maze")) == 1000
