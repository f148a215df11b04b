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
