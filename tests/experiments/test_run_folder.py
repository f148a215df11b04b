"""The run-folder helpers shared by adapt and compare, and the deprecated report alias."""

from __future__ import annotations

import importlib
import sys

import pytest

from bfm_gym.experiments.run_folder import episode_seed, evaluation_seeds, resolve_task


def test_resolve_task_canonicalises_and_lists_valid_names() -> None:
    assert resolve_task("walker", "walker-run", None) == {"domain": "walker", "task": "run", "goal": None}
    assert resolve_task("walker", "run", None)["task"] == "run"
    assert resolve_task("point_mass_maze", None, (0.1, -2)) == {
        "domain": "point_mass_maze", "task": None, "goal": [0.1, -2.0]}
    with pytest.raises(ValueError, match="run"):
        resolve_task("walker", "fly", None)
    with pytest.raises(ValueError, match="Give a task"):
        resolve_task("walker", None, None)


def test_evaluation_seeds_never_repeat_training_seeds() -> None:
    train = {episode_seed(s, k) for s in range(3) for k in range(50)}
    starts = evaluation_seeds(0, 10)
    assert len(set(starts)) == 10 and not train & set(starts)
    assert evaluation_seeds(0, 3) == starts[:3]  # a longer list extends a shorter one
    assert evaluation_seeds(1, 3) != starts[:3]


def test_samples_come_with_the_handle(tmp_path) -> None:
    """A loaded model carries its folder's inference samples; one without them says so where
    they are needed (eval), and an in-memory model can be given samples by hand."""
    import shutil

    import bfm_gym
    from bfm_gym.pretrained import resolve

    assert bfm_gym.load("point_mass_maze").samples is not None
    bare = tmp_path / "maze-no-samples"
    shutil.copytree(resolve("point_mass_maze"), bare)
    (bare / "inference_samples.safetensors").unlink()
    bfm = bfm_gym.load(bare)
    assert bfm.samples is None
    from bfm_gym.cli.eval import run_eval

    with pytest.raises(ValueError, match=r"ships no inference samples.*--dataset"):
        run_eval(str(bare), task="reach_top_left", episodes=1)
    bfm.samples = bfm_gym.load("point_mass_maze").samples
    assert bfm.samples is not None


def test_old_report_module_still_works_with_a_warning() -> None:
    from bfm_gym.experiments.compare.report import write_report

    sys.modules.pop("bfm_gym.experiments.report", None)
    with pytest.warns(DeprecationWarning, match="experiments.compare.report"):
        old = importlib.import_module("bfm_gym.experiments.report")
    assert old.write_report is write_report
