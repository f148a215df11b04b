"""The bfm-gym command line, run as a subprocess like a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def bfm_gym(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bfm_gym.cli.main", *args],
                          capture_output=True, text=True, timeout=600)


def test_collect_then_coverage(tmp_path: Path) -> None:
    out = tmp_path / "walker"
    proc = bfm_gym("collect", "--domain", "walker", "--agent", "ou", "--steps", "1000",
                   "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "stand" in proc.stdout and "coverage.png" in proc.stdout
    again = bfm_gym("collect", "--domain", "walker", "--agent", "ou", "--steps", "1000",
                    "--out", str(out), "--no-progress")
    assert again.returncode != 0 and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    cov = bfm_gym("coverage", str(out))
    assert cov.returncode == 0, cov.stderr
    report = json.loads((out / "coverage.json").read_text())
    assert set(report["tasks"]) == {"flip", "run", "stand", "walk"}
    # walker's coverage axis (Domain.coverage) is the torso height.
    assert report["panel"]["quantity"] == "torso height [m]"
    assert 0.0 < report["panel"]["quantiles"]["0.5"] < 1.5


def test_bad_names_give_one_line_errors(tmp_path: Path) -> None:
    proc = bfm_gym("collect", "--domain", "walkr", "--steps", "1000", "--out", str(tmp_path / "x"))
    assert proc.returncode != 0
    assert "Valid domains" in proc.stderr and "Traceback" not in proc.stderr
    proc = bfm_gym("collect", "--domain", "walker", "--agent", "nope", "--steps", "1000",
                   "--out", str(tmp_path / "y"))
    assert proc.returncode != 0 and "rnd" in proc.stderr and "Traceback" not in proc.stderr
    proc = bfm_gym("coverage", str(tmp_path))
    assert proc.returncode != 0 and "not a bfm_gym dataset" in proc.stderr


def test_tasks_lists_every_domain() -> None:
    proc = bfm_gym("tasks")
    assert proc.returncode == 0
    for name in ("walker", "cheetah", "quadruped", "point_mass_maze", "reach_top_left", "flip"):
        assert name in proc.stdout
