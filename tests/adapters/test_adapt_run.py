"""`adapt` runs: records, outputs, resume after an interrupt, bad input, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_maze import without_wall_time

from bfm_gym.evaluation.zero_shot import InferenceSet
from bfm_gym.experiments import adapt
from bfm_gym.models import BFM


KW = dict(task="reach_top_left", max_episode_steps=40, progress=False)


@pytest.mark.parametrize("adapter", ["zero-shot", "opti"])
def test_adapt_writes_records_curve_and_summary(model_dir: Path, tmp_path: Path, adapter: str) -> None:
    res = adapt(str(model_dir), adapter=adapter, episodes=3, seed=1, out=tmp_path / "run",
                eval_every=2, oracle=1.0, **KW)
    assert [r["episode"] for r in res.records] == [0, 1, 2]
    assert res.records[-1]["env_steps"] == 120
    assert "eval_return" in res.records[1] and "eval_return" not in res.records[0]
    assert res.summary["zero_shot"] is not None and res.summary["episodes"] == 3
    for name in ("records.jsonl", "records.csv", "summary.json", "curve.png", "state.npz"):
        assert (tmp_path / "run" / name).is_file(), name
    labels = res.records[-1]["labels_used"]
    assert labels == (120 if adapter == "opti" else 0)


def test_zero_shot_level_episodes(model_dir: Path) -> None:
    from bfm_gym.adapters.zero_shot import ZeroShotAdapter
    from bfm_gym.experiments.adapt import _run_episode
    from bfm_gym.wrappers import LatentActionWrapper
    from gymnasium.wrappers import TimeLimit
    from bfm_gym.envs import make_env

    assert adapt(str(model_dir), adapter="opti", episodes=1, zero_shot_episodes=0, **KW).summary["zero_shot"] is None
    with pytest.raises(ValueError, match="zero_shot_episodes must be an integer >= 0"):
        adapt(str(model_dir), adapter="opti", episodes=1, zero_shot_episodes=-1, **KW)
    level = adapt(str(model_dir), adapter="opti", episodes=1, seed=2, zero_shot_episodes=3, **KW).summary["zero_shot"]
    bfm = BFM.load(model_dir)
    ref = ZeroShotAdapter(bfm, {"domain": "point_mass_maze", "task": "reach_top_left", "goal": None}, None,
                          seed=2, samples=InferenceSet.load(model_dir))
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 40), bfm,
                              z_hold=1, action_map="raw")  # z is fixed: any hold gives the same episode
    seeds = [int(np.random.SeedSequence([2, 0, 2, i]).generate_state(1)[0]) for i in range(3)]
    assert level == pytest.approx(np.mean([_run_episode(env, ref, s, learn=False)[0] for s in seeds]), abs=1e-3)


def test_zero_shot_from_online_labels_counts_them(model_dir: Path) -> None:
    res = adapt(str(model_dir), adapter="zero-shot", config={"online_labels": 50}, episodes=2,
                seed=0, **KW)
    assert [r["labels_used"] for r in res.records] == [40, 50]


def test_resume_equals_uninterrupted(model_dir: Path, tmp_path: Path) -> None:
    full = adapt(str(model_dir), adapter="opti", episodes=4, seed=3, out=tmp_path / "a", **KW)
    adapt(str(model_dir), adapter="opti", episodes=2, seed=3, out=tmp_path / "b", **KW)  # "killed" after 2
    resumed = adapt(str(model_dir), adapter="opti", episodes=4, seed=3, out=tmp_path / "b", **KW)
    assert without_wall_time(resumed.records) == without_wall_time(full.records)
    lines = (tmp_path / "b" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 4  # nothing lost or duplicated


def test_adapt_bad_input(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="registered adapters: lola, opti, rela, zero-shot"):
        adapt(str(model_dir), adapter="nope", episodes=1, **KW)
    with pytest.raises(ValueError, match="Valid tasks"):
        adapt(str(model_dir), task="run", adapter="opti", episodes=1, progress=False)
    with pytest.raises(ValueError, match="did you mean 'beta'"):
        adapt(str(model_dir), adapter="opti", config={"betaa": 1}, episodes=1, **KW)
    adapt(str(model_dir), adapter="opti", episodes=1, out=tmp_path / "r", seed=0, **KW)
    with pytest.raises(ValueError, match="other arguments"):
        adapt(str(model_dir), adapter="opti", episodes=1, out=tmp_path / "r", seed=5, **KW)


def test_cli_adapt(model_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bfm_gym.cli.main", "adapt", "--model", str(model_dir), "--task",
         "point_mass_maze-reach_top_left", "--adapter", "opti", "--episodes", "2", "--out",
         str(tmp_path / "cli"), "--set", "beta=0.2", "--max-episode-steps", "30", "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "zero_shot" in proc.stdout and "best" in proc.stdout
    assert json.loads((tmp_path / "cli" / "run.json").read_text())["config"]["beta"] == 0.2
    bad = subprocess.run([sys.executable, "-m", "bfm_gym.cli.main", "adapt", "--model", str(model_dir),
                          "--task", "reach_top_left", "--adapter", "nope", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "registered adapters" in bad.stderr and "Traceback" not in bad.stderr


def test_opti_warm_start_uses_dataset_labels(model_dir: Path) -> None:
    cold = adapt(str(model_dir), adapter="opti", episodes=1, seed=0, **KW)
    warm = adapt(str(model_dir), adapter="opti", config={"warm_start": 300}, episodes=1, seed=0, **KW)
    assert warm.records[0]["labels_used"] == cold.records[0]["labels_used"] == 40  # online only
    with pytest.raises(ValueError, match="warm_start must be >= 0"):
        adapt(str(model_dir), adapter="opti", config={"warm_start": -1}, episodes=1, **KW)


def test_opti_warm_start_moves_estimate_toward_labels(model_dir: Path) -> None:
    from bfm_gym.adapters.opti import OptiAdapter

    bfm = BFM.load(model_dir)
    samples = InferenceSet.load(model_dir)
    spec = {"domain": "point_mass_maze", "task": "reach_top_left", "goal": None}
    cold = OptiAdapter(bfm, spec, {}, seed=0)
    warm = OptiAdapter(bfm, spec, {"warm_start": 600}, seed=0, samples=samples)
    assert np.allclose(cold.bandit.w_hat(), 0.0)
    assert np.linalg.norm(warm.bandit.w_hat()) > 0
    with pytest.raises(ValueError, match="needs dataset samples"):
        OptiAdapter(bfm, spec, {"warm_start": 5}, seed=0)
    goal = OptiAdapter(bfm, {"domain": "point_mass_maze", "task": None, "goal": [0.1, 0.1]},
                       {"warm_start": 1}, seed=0)
    assert np.linalg.norm(goal.bandit.w_hat()) > 0


def test_budget_steps_stops_adaptation(model_dir: Path) -> None:
    res = adapt(str(model_dir), adapter="opti", episodes=10, seed=0, budget_steps=100, **KW)
    assert [r["env_steps"] for r in res.records] == [40, 80, 120]
    with pytest.raises(ValueError, match="budget_steps"):
        adapt(str(model_dir), adapter="opti", episodes=1, budget_steps=0, **KW)


def test_resume_after_kill_between_records_and_state(model_dir: Path, tmp_path: Path) -> None:
    full = adapt(str(model_dir), adapter="opti", episodes=3, seed=4, out=tmp_path / "a", **KW)
    adapt(str(model_dir), adapter="opti", episodes=2, seed=4, out=tmp_path / "b", **KW)
    # simulate a kill after episode 2's records were written but before its state commit:
    # the state is that of episode 1, the records already hold episode 2
    import shutil

    adapt(str(model_dir), adapter="opti", episodes=1, seed=4, out=tmp_path / "c", **KW)
    shutil.copy(tmp_path / "c" / "state.npz", tmp_path / "b" / "state.npz")
    resumed = adapt(str(model_dir), adapter="opti", episodes=3, seed=4, out=tmp_path / "b", **KW)
    assert without_wall_time(resumed.records) == without_wall_time(full.records)
