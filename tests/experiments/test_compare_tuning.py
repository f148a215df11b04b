"""`compare`'s tuning budget (each adapter at its best setting, named) and the unlearning
metrics (drop below zero-shot, recovery time) of the paired evaluation curves."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bfm_gym.errors import UserError
from bfm_gym.experiments.compare import cell_name, compare
from bfm_gym.experiments.compare.tuning import choose, curve_area, parse_tune
from bfm_gym.experiments.compare.unlearning import summarize_unlearning, unlearning

# -- unlearning on handmade curves -------------------------------------------------------


def test_drop_depth_and_recovery_step() -> None:
    u = unlearning([(100, 10.0), (200, 5.0), (300, 8.0), (400, 12.0), (500, 4.5)], level=10.0)
    # the lowest point is the last one (4.5), which never comes back
    assert u["lowest"] == pytest.approx(0.45) and u["drop"] == pytest.approx(0.55)
    assert u["lowest_steps"] == 500 and u["recovered"] is False and u["recovery_steps"] is None
    u = unlearning([(100, 10.0), (200, 4.0), (300, 8.0), (400, 10.0), (500, 12.0)], level=10.0)
    assert (u["lowest"], u["drop"], u["lowest_steps"]) == (0.4, 0.6, 200)
    assert u["recovered"] is True and u["recovery_steps"] == 400  # back at >= the level (equal counts)


def test_never_below_and_never_recovered() -> None:
    u = unlearning([(100, 11.0), (200, 10.0), (300, 15.0)], level=10.0)
    assert u["drop"] == 0.0 and u["lowest"] == 1.0 and u["recovered"] is True and u["recovery_steps"] == 0
    u = unlearning([(100, 9.0), (200, 3.0), (300, 6.0)], level=10.0)
    assert u["drop"] == pytest.approx(0.7) and u["recovered"] is False and u["recovery_steps"] is None
    # a level <= 0 has no ratio, but recovery is still defined by return >= level
    u = unlearning([(100, -2.0), (200, 1.0)], level=0.0)
    assert u["lowest"] is None and u["drop"] is None and u["recovery_steps"] == 200
    assert unlearning([], level=10.0)["recovered"] is None


def test_unlearning_summary_over_seeds() -> None:
    cells = {"t": [unlearning([(100, 5.0), (200, 10.0)], 10.0),   # drop 0.5, back at 200
                   unlearning([(100, 8.0), (200, 9.0)], 10.0),    # drop 0.2, never
                   unlearning([(100, 2.0), (300, 11.0)], 10.0)]}  # drop 0.8, back at 300
    s = summarize_unlearning(cells, episode_length=100, reps=500)
    t = s["t"]
    assert t["drop"]["mean"] == pytest.approx(0.5) and t["drop"]["n"] == 3
    assert t["drop"]["low"] <= 0.5 <= t["drop"]["high"] and t["drop"]["low"] < t["drop"]["high"]
    assert (t["recovered"], t["never"]) == (2, 1)
    assert t["recovery_steps"]["mean"] == 250.0 and t["recovery_episodes"]["mean"] == 2.5
    assert s["all tasks"]["drop"]["mean"] == pytest.approx(0.5)


# -- the selection rule on handmade curves -----------------------------------------------


def test_curve_area_and_choice() -> None:
    assert curve_area([(0, 1.0), (100, 3.0)]) == 2.0
    assert curve_area([(0, 1.0), (100, 1.0), (300, 4.0)]) == pytest.approx((100 * 1 + 200 * 2.5) / 300)
    assert curve_area([(50, 7.0)]) == 7.0 and math.isnan(curve_area([]))
    curves = {"a": [(100, 5.0), (200, 5.0)], "b": [(100, 2.0), (200, 9.0)], "c": [(100, 9.0), (200, 1.0)]}
    best, scores = choose(["a", "b", "c"], ["t"], [0], lambda v, t, s: curves[v], lambda t: 5.0)
    assert best == "b" and scores["b"]["selection_score"] == pytest.approx(1.1)
    # a setting that is better at the end but worse in area loses: the area, not the last point, decides
    curves["b"] = [(100, 0.0), (200, 9.0)]
    best, _ = choose(["a", "b"], ["t"], [0], lambda v, t, s: curves[v], lambda t: 5.0)
    assert best == "a"
    tie, _ = choose(["c", "a"], ["t"], [0], lambda v, t, s: curves["a"], lambda t: 5.0)
    assert tie == "c"  # ties: the first in grid order
    none, _ = choose(["a"], ["t"], [0], lambda v, t, s: [], lambda t: 5.0)
    assert none is None


# -- a real comparison with a tuning grid -------------------------------------------------

TASK = "point_mass_maze-reach_top_left"
RELA = {"warmup_steps": 50, "update_every": 4, "batch_size": 32}  # so z moves within 200 steps


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> object:
    # the shipped maze model (its zero-shot z earns reward within 100 steps); the far too
    # large learning rate first in the grid, so that "first setting" is the wrong answer
    out = tmp_path_factory.mktemp("tune") / "cmp"
    return compare("point_mass_maze", "reach_top_left", "zero-shot,rela", out=out, seeds=1, episodes=2,
                   max_episode_steps=100, workers=1, bootstrap_reps=200, progress=False,
                   config={"rela": RELA}, tune={"lr": ["0.5", "1e-5"]})


def _curve_area_from_folder(out: Path, variant: str, level: float) -> float:
    recs = [json.loads(x) for x in (out / "cells" / cell_name(variant, TASK, 0) / "records.jsonl").read_text().splitlines()]
    pts = [(r["env_steps"], r["eval_return"] / level) for r in recs if "eval_return" in r]
    xs, ys = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts])
    return float(np.trapezoid(ys, xs) / (xs[-1] - xs[0])) if len(pts) > 1 else float(ys[0])


def test_tuning_grid_selects_the_best_setting_and_names_it(tuned: object) -> None:
    res = tuned
    out = res.out
    assert res.spec.tune["rela"]["key"] == "lr_z" and res.spec.tune["rela"]["values"] == [0.5, 1e-5]
    level = res.aggregates["zero_shot"][TASK]["level"]
    assert level > 0
    areas = {v: _curve_area_from_folder(out, v, level) for v in ("rela@lr_z=0.5", "rela@lr_z=1e-05")}
    assert areas["rela@lr_z=1e-05"] != pytest.approx(areas["rela@lr_z=0.5"])  # the settings really differ
    best = max(areas, key=areas.get)
    tuning = res.aggregates["tuning"]["adapters"]["rela"]
    assert tuning["chosen_variant"] == best and tuning["chosen"] == best.split("@")[1]
    seed_level = json.loads((out / "cells" / cell_name("zero-shot", TASK, 0) / "summary.json").read_text())["zero_shot"]
    for s in tuning["settings"]:
        assert s["selection_score"] == pytest.approx(areas[s["variant"]])
        assert s["final_iqm_zero_shot"] is not None  # every setting's result is kept
        recs = [json.loads(x) for x in (out / "cells" / cell_name(s["variant"], TASK, 0) / "records.jsonl")
                .read_text().splitlines()]
        lowest = min(r["eval_return"] for r in recs if "eval_return" in r) / seed_level
        assert s["unlearning"]["drop"]["mean"] == pytest.approx(max(0.0, 1 - lowest), abs=1e-4)
    assert res.aggregates["tuning"]["untuned"] == ["zero-shot"]
    assert res.aggregates["selected_settings"] == {"zero-shot": None, "rela": tuning["chosen"]}
    # the headline numbers are the chosen setting's cell
    recs = [json.loads(x) for x in (out / "cells" / cell_name(best, TASK, 0) / "records.jsonl").read_text().splitlines()]
    final = res.aggregates["checkpoints"][-1]["adapters"]["rela"]["zero_shot"]["iqm"]["value"]
    assert final == pytest.approx(recs[-1]["eval_return"] / level)
    # named in compare.json, aggregates.json, results.csv, cells.json and report.md
    assert json.loads((out / "compare.json").read_text())["selected"]["rela"] == {
        "setting": tuning["chosen"], "variant": best}
    assert json.loads((out / "aggregates.json").read_text())["selected_settings"]["rela"] == tuning["chosen"]
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["setting"], r["selected"]) for r in rows if r["adapter"] == "rela"} == {
        (tuning["chosen"], "True"), (next(s for s in ("lr_z=0.5", "lr_z=1e-05") if s != tuning["chosen"]), "False")}
    cells = json.loads((out / "cells.json").read_text())
    assert sorted(c["setting"] for c in cells if c["adapter"] == "rela") == ["lr_z=0.5", "lr_z=1e-05"]
    # every setting is evaluated on the same fixed start states as the zero-shot z
    starts = {v: json.loads((out / "cells" / cell_name(v, TASK, 0) / "summary.json").read_text())["evaluation"]
              ["initial_obs"] for v in ("zero-shot", "rela@lr_z=0.5", "rela@lr_z=1e-05")}
    assert starts["rela@lr_z=0.5"] == starts["zero-shot"] == starts["rela@lr_z=1e-05"]
    report = (out / "report.md").read_text()
    assert f"rela ({tuning['chosen']})" in report and "## Tuning budget" in report
    assert "--tune rela.lr_z=0.5,1e-05" in report and "reported seeds" in report


def test_rerun_reuses_every_setting_and_chooses_the_same(tuned: object) -> None:
    res = tuned
    again = compare("point_mass_maze", "reach_top_left", "zero-shot,rela", out=res.out, seeds=1, episodes=2,
                    max_episode_steps=100, workers=1, bootstrap_reps=200, progress=False,
                    config={"rela": RELA}, tune={"lr": ["0.5", "1e-5"]})
    assert {c["status"] for c in again.cells} == {"reused"} and len(again.cells) == 3
    assert again.aggregates["tuning"] == res.aggregates["tuning"]
    assert again.aggregates["checkpoints"] == res.aggregates["checkpoints"]


def test_unlearning_table_of_every_adapter(tuned: object) -> None:
    res = tuned
    un = res.aggregates["unlearning"]
    assert set(un) == {"zero-shot", "rela"}
    # the zero-shot adapter's frozen z is the zero-shot level on every evaluation point
    zs = un["zero-shot"][TASK]
    assert zs["drop"]["mean"] == 0.0 and zs["recovered"] == 1 and zs["recovery_steps"]["mean"] == 0.0
    cell = un["rela"][TASK]["per_seed"][TASK][0]
    recs = [json.loads(x) for x in (res.out / "cells" / cell_name(res.aggregates["tuning"]["adapters"]["rela"]
                                                                  ["chosen_variant"], TASK, 0) / "records.jsonl")
            .read_text().splitlines()]
    seed_level = json.loads((res.out / "cells" / cell_name("zero-shot", TASK, 0) / "summary.json").read_text())["zero_shot"]
    lowest = min(r["eval_return"] for r in recs if "eval_return" in r) / seed_level
    assert cell["lowest"] == pytest.approx(lowest, abs=1e-4)
    assert cell["drop"] == pytest.approx(max(0.0, 1 - lowest), abs=1e-4)
    # adapt's own summary carries the same numbers for its run
    chosen = res.aggregates["tuning"]["adapters"]["rela"]["chosen_variant"]
    summary = json.loads((res.out / "cells" / cell_name(chosen, TASK, 0) / "summary.json").read_text())
    assert summary["unlearning"] == {k: v for k, v in cell.items() if k != "seed"}
    report = (res.out / "report.md").read_text()
    assert "## Unlearning: drop below zero-shot and recovery" in report
    assert "| zero-shot | point_mass_maze-reach_top_left | 0 | 1 | 1 of 1 | 0 | 0 |" in report


def test_separate_selection_seeds(model_dir: Path, tmp_path: Path) -> None:
    """The settings run on the selection seeds only; the chosen one then on the reported seeds."""
    from bfm_gym.experiments.compare.status import grid_status

    out = tmp_path / "sel"
    kw = dict(seeds=[0], episodes=1, max_episode_steps=20, tune={"opti.beta": [0.1, 10]}, select_seeds=[7])
    before = grid_status(str(model_dir), "reach_top_left", "opti", out, **kw)
    assert [(r["phase"], r["cells"], r["not_started"], r["chosen"]) for r in before] == [
        ("settings", 2, 2, None), ("reported", 1, 1, None)]
    assert not out.exists()
    res = compare(str(model_dir), "reach_top_left", "opti", out=out, workers=1, bootstrap_reps=50,
                  progress=False, **kw)
    chosen = res.aggregates["tuning"]["adapters"]["opti"]["chosen_variant"]
    after = grid_status(str(model_dir), "reach_top_left", "opti", out, **kw)
    assert [(r["phase"], r["cells"], r["finished"], r["chosen"]) for r in after] == [
        ("settings", 2, 2, chosen.split("@")[1]), ("reported", 1, 1, chosen.split("@")[1])]
    folders = sorted(p.name for p in (out / "cells").iterdir())
    assert folders == sorted([cell_name("opti@beta=0.1", TASK, 7), cell_name("opti@beta=10.0", TASK, 7),
                              cell_name(chosen, TASK, 0)])
    assert res.aggregates["tuning"]["separate_selection_seeds"] is True
    assert res.aggregates["tuning"]["selection_seeds"] == [7]
    assert "separate selection seeds" in (out / "report.md").read_text()
    assert {r["seed"] for r in res.rows if r["selected"]} == {0}


def test_bad_tuning_input(model_dir: Path, tmp_path: Path) -> None:
    m, out = str(model_dir), tmp_path / "bad"
    kw = dict(seeds=1, episodes=1, max_episode_steps=20, progress=False)
    with pytest.raises(UserError, match="same number of settings"):
        compare(m, TASK, "opti,rela", out=out, tune={"lr": [1e-5, 1e-4], "opti.beta": [1.0]}, **kw)
    with pytest.raises(UserError, match="none of opti has a learning-rate field"):
        compare(m, TASK, "opti", out=out, tune={"lr": [1e-5, 1e-4]}, **kw)
    with pytest.raises(UserError, match=r"no field 'bta' \(did you mean 'beta'"):
        compare(m, TASK, "opti", out=out, tune={"opti.bta": [1, 2]}, **kw)
    with pytest.raises(UserError, match=r"both set .* and tuned"):
        compare(m, TASK, "rela", out=out, config={"rela": {"lr_z": 1e-4}}, tune={"lr": [1e-5, 1e-4]}, **kw)
    with pytest.raises(UserError, match="also reported seeds"):
        compare(m, TASK, "rela", out=out, tune={"lr": [1e-5, 1e-4]}, select_seeds=[0], **kw)
    with pytest.raises(UserError, match="two values give the same setting"):
        compare(m, TASK, "rela", out=out, tune={"lr": ["1e-4", "0.0001"]}, **kw)
    with pytest.raises(UserError, match="needs --eval-episodes >= 1"):
        compare(m, TASK, "rela", out=out, tune={"lr": [1e-5, 1e-4]}, eval_episodes=0, **kw)
    with pytest.raises(ValueError, match="lr_z"):
        compare(m, TASK, "rela", out=out, tune={"lr": ["1e-5", "abc"]}, **kw)
    assert not out.exists()
    with pytest.raises(UserError, match="--tune expects"):
        parse_tune(["lr"])
    assert parse_tune(["lr=1e-4, 3e-4", "opti.beta=1"]) == {"lr": ["1e-4", "3e-4"], "opti.beta": ["1"]}


def test_lr_grid_as_multiples_of_each_default() -> None:
    from bfm_gym.adapters.lola import LoLAConfig
    from bfm_gym.adapters.rela import ReLAConfig
    from bfm_gym.experiments.compare.tuning import resolve_grids
    from bfm_gym.plugins import load_plugins

    reg = load_plugins().adapters
    grids = resolve_grids({"lr": ["x0.3", "x1", "x3"]}, ["zero-shot", "opti", "rela", "lola"], reg)
    assert set(grids) == {"rela", "lola"}  # zero-shot and opti have no learning rate
    lr_z, lr = ReLAConfig().lr_z, LoLAConfig().lr
    assert grids["rela"] == ("lr_z", [pytest.approx(0.3 * lr_z), lr_z, pytest.approx(3 * lr_z)])
    assert grids["lola"] == ("lr", [pytest.approx(0.3 * lr), lr, pytest.approx(3 * lr)])
    # a per-adapter grid wins over lr for that adapter
    grids = resolve_grids({"lr": ["x1", "x2"], "lola.sigma": ["0.1", "0.3"]}, ["rela", "lola"], reg)
    assert grids["lola"] == ("sigma", ["0.1", "0.3"]) and grids["rela"][0] == "lr_z"
    with pytest.raises(UserError, match="not a multiple of the default"):
        resolve_grids({"lr": ["xx"]}, ["rela"], reg)
    with pytest.raises(UserError, match="not compared"):
        resolve_grids({"lola.lr": ["1"]}, ["rela"], reg)


def test_cli_tune(model_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "bfm_gym.cli.main", "compare", "--model", str(model_dir), "--tasks", "reach_top_left",
         "--adapters", "zero-shot,opti", "--seeds", "1", "--episodes", "1", "--max-episode-steps", "20",
         "--workers", "1", "--bootstrap-reps", "50", "--tune", "opti.beta=x0.1,x10", "--select-seeds", "3",
         "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    chosen = json.loads((out / "aggregates.json").read_text())["selected_settings"]["opti"]
    assert chosen in ("beta=0.1", "beta=10.0") and f"opti ({chosen})" in proc.stdout
    assert "--tune opti.beta=x0.1,x10 --select-seeds 3" in (out / "report.md").read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "bfm_gym.cli.main", "compare", "--model", str(model_dir), "--tasks", "reach_top_left",
         "--adapters", "opti", "--tune", "lr", "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--tune expects" in bad.stderr and "Traceback" not in bad.stderr


def test_an_adapter_names_its_own_tuned_field() -> None:
    from bfm_gym.adapters.lola import LoLAAdapter
    from bfm_gym.experiments.compare.tuning import resolve_grids

    class SigmaLoLA(LoLAAdapter):  # a plugin adapter whose step size is sigma, not lr
        tune_field = "sigma"

    grids = resolve_grids({"lr": ["x0.5", "x2"]}, ["sigma-lola"], {"sigma-lola": (SigmaLoLA,)})
    assert grids == {"sigma-lola": ("sigma", [pytest.approx(0.1), pytest.approx(0.4)])}
