"""`bfm-gym compare` with several --model: one comparison per model, adapters x families side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_maze import write_tiny_maze_model

from bfm_gym.experiments.families import model_labels


def test_model_labels_are_unique_and_folder_safe() -> None:
    assert model_labels(["walker", "runs/walker-hilp", "other/walker"]) == {
        "walker": "walker", "runs/walker-hilp": "walker-hilp", "other/walker": "walker-2"}
    with pytest.raises(ValueError, match="twice"):
        model_labels(["walker", "walker"])


def test_cli_compare_several_models(tmp_path: Path) -> None:
    starts = [(-0.15, 0.15), (-0.15, 0.145)]
    fb = write_tiny_maze_model(tmp_path / "maze-fb", starts, steps=100)
    hilp = write_tiny_maze_model(tmp_path / "maze-hilp", starts, steps=100, family="hilp")
    out = tmp_path / "cmp"
    proc = subprocess.run(
        [sys.executable, "-m", "bfm_gym.cli.main", "compare", "--model", str(fb), "--model", str(hilp),
         "--tasks", "reach_top_left", "--adapters", "zero-shot,opti", "--seeds", "1", "--episodes", "2",
         "--max-episode-steps", "20", "--workers", "1", "--bootstrap-reps", "50", "--out", str(out),
         "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for label in ("maze-fb", "maze-hilp"):
        assert (out / label / "report.md").is_file()
    table = json.loads((out / "families.json").read_text())
    assert {m["family"] for m in table["models"].values()} == {"bfm_gym.fb", "bfm_gym.hilp"}
    assert set(table["adapters"]) == {"zero-shot", "opti"}
    assert set(table["adapters"]["opti"]) == {"maze-fb", "maze-hilp"}
    md = (out / "families.md").read_text()
    assert "| adapter | maze-fb (fb) | maze-hilp (hilp) |" in md and "| opti |" in md


def test_families_table_names_each_models_chosen_setting(tmp_path: Path) -> None:
    """A tuned adapter's cell shows the setting chosen for that model (it may differ by model)."""
    import json

    from bfm_gym.experiments.families import write_families_table

    for label, lr, value in (("a", "lr=0.01", 1.25), ("b", "lr=0.003", 0.75)):
        iqm = {"value": value, "low": value - 0.1, "high": value + 0.1}
        (tmp_path / label).mkdir()
        (tmp_path / label / "aggregates.json").write_text(json.dumps({
            "selected_settings": {"lola": lr, "zero-shot": None},
            "checkpoints": [{"episodes": 3, "adapters": {"lola": {"zero_shot": {"iqm": iqm}},
                                                         "zero-shot": {"zero_shot": {"iqm": iqm}}}}]}))
    md = write_families_table(tmp_path, {"model_a": "a", "model_b": "b"}).read_text()
    lola = next(line for line in md.splitlines() if line.startswith("| lola |"))
    assert "1.250 [1.150, 1.350] (lr=0.01)" in lola and "0.750 [0.650, 0.850] (lr=0.003)" in lola
    zero = next(line for line in md.splitlines() if line.startswith("| zero-shot |"))
    assert "(" not in zero.split("]", 1)[1].split("|")[0]
    saved = json.loads((tmp_path / "families.json").read_text())
    assert saved["adapters"]["lola"]["b"]["setting"] == "lr=0.003"


def test_tasks_go_to_the_models_of_their_domain() -> None:
    from bfm_gym.errors import UserError
    from bfm_gym.experiments.families import route_tasks

    domains = {"walker": "walker", "runs/walker-hilp": "walker", "maze": "point_mass_maze"}
    assert route_tasks(["walker-run", "point_mass_maze-reach_top_left", "walker-walk"], domains) == {
        "walker": ["walker-run", "walker-walk"], "runs/walker-hilp": ["walker-run", "walker-walk"],
        "maze": ["point_mass_maze-reach_top_left"]}
    with pytest.raises(UserError, match="no --model is of domain cheetah"):
        route_tasks("walker-run,point_mass_maze-reach_top_left,cheetah-run", domains)
    with pytest.raises(UserError, match=r"--model maze \(domain point_mass_maze\) gets no task"):
        route_tasks("walker-run", domains)


def test_several_models_are_all_checked_before_any_cell_runs(tmp_path: Path) -> None:
    """A task the second model does not have stops the comparison before the first model's
    cells start (they would otherwise run for hours first)."""
    from bfm_gym.experiments.families import compare_models

    maze = write_tiny_maze_model(tmp_path / "maze", [(-0.15, 0.15)], steps=50)
    out = tmp_path / "cmp"
    with pytest.raises(ValueError, match=rf"--model {maze}: Unknown task 'run'"):
        compare_models(["walker", maze], "run", "zero-shot", out=out, seeds=1, episodes=1,
                       max_episode_steps=10, workers=1, progress=False)
    assert not out.exists()
    with pytest.raises(ValueError, match="--oracle for walker-flip, which no model compares"):
        compare_models(["walker", maze], "walker-run,point_mass_maze-reach_top_left", "zero-shot",
                       out=out, oracle={"walker-flip": 100.0}, seeds=1, episodes=1, workers=1)
    assert not out.exists()


def test_cli_compare_across_domains(tmp_path: Path) -> None:
    """One grid over two domains: domain-prefixed tasks go to their model, oracles too; the
    table puts both models' adapters side by side with each one's gain over zero-shot."""
    maze = write_tiny_maze_model(tmp_path / "maze", [(-0.15, 0.15)], steps=100)
    out = tmp_path / "cmp"
    proc = subprocess.run(
        [sys.executable, "-m", "bfm_gym.cli.main", "compare", "--model", "walker", "--model", str(maze),
         "--tasks", "walker-stand,point_mass_maze-reach_top_left", "--adapters", "zero-shot,opti",
         "--seeds", "1", "--episodes", "2", "--max-episode-steps", "20", "--workers", "1",
         "--eval-episodes", "2", "--bootstrap-reps", "50", "--oracle", "point_mass_maze-reach_top_left=50",
         "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    walker, tiny = (json.loads((out / label / "compare.json").read_text()) for label in ("walker", "maze"))
    assert walker["tasks"] == ["walker-stand"] and walker["oracle"] == {}
    assert tiny["tasks"] == ["point_mass_maze-reach_top_left"]
    assert tiny["oracle"] == {"point_mass_maze-reach_top_left": 50.0}
    table = json.loads((out / "families.json").read_text())
    assert table["models"]["walker"]["domain"] == "walker"
    assert table["models"]["maze"]["tasks"] == ["point_mass_maze-reach_top_left"]
    for label in ("walker", "maze"):
        gain = table["gains"]["opti"][label]
        assert gain["tasks"] == 1 and 0 <= gain["tasks_up_ci"] <= gain["tasks_up"] <= 1
    assert table["gains"]["zero-shot"]["walker"]["median_gain"] == 0.0  # the zero-shot z itself
    # the tiny maze model may score 0 in 20 steps: no level, so no relative gain
    assert table["gains"]["zero-shot"]["maze"]["median_gain"] in (0.0, None)
    md = (out / "families.md").read_text()
    assert "## Gain over the zero-shot z, per model" in md and "| opti | " in md


def test_gain_table_pools_every_models_tasks_and_draws_them(tmp_path: Path) -> None:
    """Across domains the gain table has an `all` column: the median over every model's tasks
    (not the median of the per-model medians) and the summed task counts; families.png draws it."""
    from bfm_gym.experiments.families import write_families_table

    diffs = {"a": {"t1": (10.0, 2.0), "t2": (-5.0, -9.0), "t3": (30.0, 1.0)}, "b": {"t1": (1.0, -1.0)}}
    for label, per_task in diffs.items():
        (tmp_path / label).mkdir()
        iqm = {"value": 1.0, "low": 0.9, "high": 1.1}
        (tmp_path / label / "aggregates.json").write_text(json.dumps({
            "checkpoints": [{"episodes": 2, "adapters": {"lola": {"zero_shot": {"iqm": iqm}}}}],
            "zero_shot": {t: {"level": 100.0} for t in per_task},
            "paired_vs_zero_shot": {"lola": {t: {"pairs": 5, "mean_difference": d, "low": low, "high": d + 5}
                                             for t, (d, low) in per_task.items()}}}))
    md = write_families_table(tmp_path, {"A": "a", "B": "b"}).read_text()
    gains = json.loads((tmp_path / "families.json").read_text())["gains"]["lola"]
    assert gains["a"]["median_gain"] == 0.1 and gains["b"]["median_gain"] == 0.01
    # pooled over 4 tasks (0.1, -0.05, 0.3, 0.01): median 0.055, not the median of (0.1, 0.01)
    assert gains["all"]["median_gain"] == pytest.approx(0.055)
    assert (gains["all"]["tasks"], gains["all"]["tasks_up"], gains["all"]["tasks_up_ci"]) == (4, 3, 2)
    assert set(gains["all"]["per_task"]) == {"a/t1", "a/t2", "a/t3", "b/t1"}
    assert "| lola | +10.0 %, 2/3 up (2 with CI > 0) | +1.0 %, 1/1 up (0 with CI > 0) | +5.5 %, 3/4 up" in md
    assert (tmp_path / "families.png").stat().st_size > 0
