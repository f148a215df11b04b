"""The example plugin package plugins/bfm-gym-cem, loaded through its real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

KW = dict(task="reach_top_left", max_episode_steps=40, progress=False)
CFG = {"population": 3, "elites": 1, "segment_steps": 20}


@pytest.fixture
def cem(load_only: Callable[[str, str], None]) -> None:
    load_only("cem", "bfm-gym-cem")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BFM_GYM_LOAD_PLUGINS": "cem"}
    return subprocess.run([sys.executable, "-m", "bfm_gym.cli.main", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_cem_is_listed_by_bfm_gym_plugins(cem: None) -> None:
    proc = _cli("plugins", "--hook", "register_adapters")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["cem"]["registered"]["adapters"] == ["cem"]
    assert rows["cem"]["module"] == "bfm_gym_cem.plugin" and not rows["cem"]["errors"]


def test_cem_through_python_adapt(cem: None, tiny_model_dir: Path, tmp_path: Path) -> None:
    from bfm_gym.experiments import adapt

    res = adapt(str(tiny_model_dir), adapter="cem", episodes=3, seed=0, out=tmp_path / "run",
                config=CFG, eval_every=3, **KW)
    assert [r["env_steps"] for r in res.records] == [40, 80, 120]
    assert res.records[-1]["labels_used"] == 120 and "eval_return" in res.records[-1]
    assert any(r["z_change"] > 0 for r in res.records)  # two generations: the mean moved
    assert (tmp_path / "run" / "state.npz").is_file()


def test_cem_through_the_cli_resumes(cem: None, tiny_model_dir: Path, tmp_path: Path) -> None:
    args = ["adapt", "--model", str(tiny_model_dir), "--task", "reach_top_left", "--adapter", "cem",
            "--seed", "1", "--out", str(tmp_path / "run"), "--max-episode-steps", "40",
            "--no-progress", "--set", "population=3", "--set", "elites=1",
            "--set", "segment_steps=20"]
    first = _cli(*args, "--episodes", "1")
    assert first.returncode == 0, first.stderr
    second = _cli(*args, "--episodes", "3")
    assert second.returncode == 0, second.stderr
    lines = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    assert [json.loads(line)["episode"] for line in lines] == [0, 1, 2]


def test_cem_and_sb3_through_compare_in_worker_processes(load_only: Callable[[str, str], None],
                                                          tiny_model_dir: Path, tmp_path: Path) -> None:
    """Plugin adapters reach spawned compare workers through the real entry points."""
    load_only("cem,sb3", "bfm-gym-cem")
    from bfm_gym.experiments import compare

    res = compare(str(tiny_model_dir), ["reach_top_left"], ["zero-shot", "cem", "sb3-sac-latent", "sb3-td3-finetune"],
                  out=tmp_path / "cmp", seeds=1, episodes=2, workers=2, max_episode_steps=30,
                  config={"cem": CFG, "sb3-sac-latent": {"learning_starts": 10},
                          "sb3-td3-finetune": {"learning_starts": 10}},
                  oracle={"point_mass_maze-reach_top_left": 100.0}, bootstrap_reps=50,
                  progress=False)
    cells = {(c["adapter"], c["task"]): c for c in res.cells}
    assert {a for a, _ in cells} == {"zero-shot", "cem", "sb3-sac-latent", "sb3-td3-finetune"}
    rows = [r for r in res.rows if r["adapter"] in ("cem", "sb3-sac-latent")]
    assert sorted((r["adapter"], r["episode"], r["env_steps"]) for r in rows) == [
        ("cem", 0, 30), ("cem", 1, 60), ("sb3-sac-latent", 0, 30), ("sb3-sac-latent", 1, 60)]
    assert (tmp_path / "cmp" / "report.md").is_file()
    # the head to head pits every latent adapter against the one that fine-tunes weights
    assert res.spec.acts == {"zero-shot": "latent", "cem": "latent", "sb3-sac-latent": "latent",
                             "sb3-td3-finetune": "env"}
    h2h = [h for h in res.aggregates["latent_vs_weights"] if h["episodes"] == 2]
    assert [(h["latent"], h["weights"]) for h in h2h] == [
        (a, "sb3-td3-finetune") for a in ("zero-shot", "cem", "sb3-sac-latent")]
    final = {r["adapter"]: r["return"] for r in res.rows if r["episode"] == 1}
    for h in h2h:
        beats = final[h["latent"]] > final["sb3-td3-finetune"]
        assert h["tasks_compared"] == 1 and h["tasks_won"] == (["point_mass_maze-reach_top_left"] if beats else [])
        tie = final[h["latent"]] == final["sb3-td3-finetune"]
        assert h["p_improvement"]["value"] == (0.5 if tie else float(beats))
    assert "## Latent search against weight fine-tuning" in (tmp_path / "cmp" / "report.md").read_text()
