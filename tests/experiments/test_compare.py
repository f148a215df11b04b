"""`compare`: a tiny grid on the local pool and on Ray, resume, outputs, bad input, CLI."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bfm_gym.experiments.adapt import adapt
from bfm_gym.experiments.compare import CompareResult, cell_name, compare, parse_overrides

TASKS = "point_mass_maze-reach_top_left,reach_top_right"
ADAPTERS = "zero-shot,opti"
KW: dict[str, Any] = dict(seeds=2, episodes=3, max_episode_steps=30, config={"opti": {"beta": 0.5}},
                          oracle={"reach_top_left": 2.0}, bootstrap_reps=300, progress=False)
CELL = cell_name("opti", "point_mass_maze-reach_top_right", 1)


def _table(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def local_run(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> CompareResult:
    out = tmp_path_factory.mktemp("cmp") / "local"
    return compare(str(model_dir), TASKS, ADAPTERS, out=out, workers=2, **KW)


def test_local_pool_outputs_and_equal_budgets(local_run: CompareResult) -> None:
    out = local_run.out
    for name in ("results.csv", "cells.json", "aggregates.json", "aggregates.csv", "compare.json",
                 "report.md", "aggregate.png", "profile.png", "curve_point_mass_maze-reach_top_left.png"):
        assert (out / name).is_file(), name
    rows = _table(out)
    assert len(rows) == 2 * 2 * 2 * 3
    keys = [(r["adapter"], r["task"], r["seed"], r["episode"]) for r in rows]
    assert len(set(keys)) == len(keys)
    cells = json.loads((out / "cells.json").read_text())
    assert len(cells) == 8 and {c["status"] for c in cells} == {"ran"}
    assert {(c["budget_steps"], c["budget_labels"], c["env_steps"]) for c in cells} == {(90, 90, 90)}
    assert {c["labels_used"] for c in cells if c["adapter"] == "opti"} == {90}
    assert {c["labels_used"] for c in cells if c["adapter"] == "zero-shot"} == {0}
    for r in local_run.rows:
        if r["task"].endswith("top_left"):
            assert r["oracle"] == 2.0 and r["oracle_source"] == "--oracle"
            assert r["score_oracle"] == pytest.approx(r["return"] / 2.0)
        else:
            assert r["oracle_source"].startswith("zero-shot") and r["oracle"] == r["zero_shot"]
    agg = json.loads((out / "aggregates.json").read_text())
    assert [c["episodes"] for c in agg["checkpoints"]] == [1, 3]
    final = agg["checkpoints"][-1]["adapters"]["opti"]["oracle"]["iqm"]
    scored = [t for t, o in agg["oracle"].items() if o["value"] and o["value"] > 0]  # a level <= 0: no score
    assert "point_mass_maze-reach_top_left" in scored  # --oracle 2.0
    assert final["n"] == 2 * len(scored) and final["low"] <= final["value"] <= final["high"]
    report = (out / "report.md").read_text()
    assert "bfm-gym compare --model" in report and "--set opti.beta=0.5" in report
    assert "| opti | point_mass_maze-reach_top_left | 3 | 90 | 90 | no | 0 |" in report
    assert "| zero-shot | point_mass_maze-reach_top_left | 3 | 90 | 0 | yes | 0 |" in report
    assert json.loads((out / "cells" / CELL / "run.json").read_text())["config"]["beta"] == 0.5


def test_resume_after_interrupt_equals_uninterrupted(local_run: CompareResult, model_dir: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(local_run.out, out)
    # one cell never started, one killed after its first episode (no summary.json)
    shutil.rmtree(out / "cells" / cell_name("zero-shot", "point_mass_maze-reach_top_left", 0))
    shutil.rmtree(out / "cells" / CELL)
    spec = local_run.spec
    adapt(str(model_dir), "reach_top_right", "opti", episodes=1, seed=1, out=out / "cells" / CELL,
          config=spec.configs["opti"], max_episode_steps=30, budget_steps=spec.budget_steps,
          budget_labels=spec.budget_labels, eval_episodes=spec.eval_episodes, eval_steps=spec.eval_steps(),
          progress=False)
    (out / "cells" / CELL / "summary.json").unlink()
    kept = (out / "cells" / cell_name("opti", "point_mass_maze-reach_top_left", 0) / "records.jsonl").stat()
    res = compare(str(model_dir), TASKS, ADAPTERS, out=out, workers=1, **KW)
    assert _table(out) == _table(local_run.out)
    assert len((out / "cells" / CELL / "records.jsonl").read_text().splitlines()) == 3
    ran = {c["cell"] for c in res.cells if c["status"] == "ran"}
    assert ran == {CELL, cell_name("zero-shot", "point_mass_maze-reach_top_left", 0)}
    again = (out / "cells" / cell_name("opti", "point_mass_maze-reach_top_left", 0) / "records.jsonl").stat()
    assert again.st_mtime_ns == kept.st_mtime_ns  # finished cells are not rerun
    assert res.aggregates["checkpoints"][-1]["adapters"]["opti"]["oracle"]["iqm"] == \
        local_run.aggregates["checkpoints"][-1]["adapters"]["opti"]["oracle"]["iqm"]


def test_cells_reduced_to_their_small_files_are_reused(local_run: CompareResult, model_dir: Path,
                                                       tmp_path: Path) -> None:
    """A long grid is committed as it runs with only each finished cell's run.json, summary and
    records (benchmarks/results/cmp-walker-tuned; .gitignore drops states, logs and plots): a
    clone must reuse those cells, whole grid or a subset of its adapters, and give the same
    numbers without running one."""
    out = tmp_path / "committed"
    shutil.copytree(local_run.out, out)
    dropped = 0
    for cell in (out / "cells").iterdir():
        for path in sorted(cell.iterdir()):
            if path.name not in ("run.json", "summary.json", "records.jsonl", "records.csv"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                dropped += 1
    assert dropped  # the states the committed folder leaves out were there
    res = compare(str(model_dir), TASKS, ADAPTERS, out=out, workers=1, **KW)
    assert {c["status"] for c in res.cells} == {"reused"} and len(res.cells) == 8
    assert _table(out) == _table(local_run.out)
    only = compare(str(model_dir), TASKS, "opti", out=out, workers=1, **KW)
    assert {c["status"] for c in only.cells} == {"reused"} and {c["adapter"] for c in only.cells} == {"opti"}
    assert only.aggregates["checkpoints"][-1]["adapters"]["opti"]["oracle"]["iqm"] == \
        local_run.aggregates["checkpoints"][-1]["adapters"]["opti"]["oracle"]["iqm"]


def test_status_counts_finished_partial_and_missing_cells_and_writes_nothing(
        local_run: CompareResult, model_dir: Path, tmp_path: Path) -> None:
    from bfm_gym.experiments.compare.status import format_status, grid_status

    out = tmp_path / "pieces"
    shutil.copytree(local_run.out, out)
    shutil.rmtree(out / "cells" / cell_name("zero-shot", "point_mass_maze-reach_top_left", 0))
    records = out / "cells" / CELL / "records.jsonl"  # stopped after its first episode
    records.write_text(records.read_text().splitlines()[0] + "\n")
    (out / "cells" / CELL / "summary.json").unlink()
    before = sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*"))
    rows = grid_status(str(model_dir), TASKS, ADAPTERS, out, **KW)
    assert sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*")) == before
    by = {r["adapter"]: r for r in rows}
    assert [r["phase"] for r in rows] == ["cells", "cells"]
    assert {k: by["zero-shot"][k] for k in ("cells", "finished", "partial", "not_started", "episodes_left")} == \
        {"cells": 4, "finished": 3, "partial": 0, "not_started": 1, "episodes_left": 3.0}
    assert {k: by["opti"][k] for k in ("cells", "finished", "partial", "not_started", "episodes_left")} == \
        {"cells": 4, "finished": 3, "partial": 1, "not_started": 0, "episodes_left": 2.0}
    assert format_status(rows).splitlines()[-1].split() == ["all", "8", "6", "1", "1", "5"]
    with pytest.raises(ValueError, match="another episodes"):
        grid_status(str(model_dir), TASKS, ADAPTERS, out, **{**KW, "episodes": 4})
    cli = subprocess.run([sys.executable, "-m", "bfm_gym.cli.main", "compare", "--model", str(model_dir),
                          "--tasks", TASKS, "--adapters", ADAPTERS, "--seeds", "2", "--episodes", "3",
                          "--max-episode-steps", "30", "--set", "opti.beta=0.5", "--out", str(out), "--status"],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines()[-1].split() == ["all", "8", "6", "1", "1", "5"]
    assert sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*")) == before


def test_ray_gives_the_same_numbers(local_run: CompareResult, model_dir: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        compare(str(model_dir), TASKS, ADAPTERS, out=tmp_path / "ray", executor="ray", **KW)
    finally:
        ray.shutdown()
    assert _table(tmp_path / "ray") == _table(local_run.out)


def test_ray_missing_names_the_extra(model_dir: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'bfm_gym\[ray\]'"):
        compare(str(model_dir), TASKS, ADAPTERS, out=tmp_path / "x", executor="ray", **KW)
    assert not (tmp_path / "x").exists()


def test_bad_input_fails_before_running(model_dir: Path, local_run: CompareResult, tmp_path: Path) -> None:
    m, out = str(model_dir), tmp_path / "bad"
    kw = {k: v for k, v in KW.items() if k != "config"}
    with pytest.raises(ValueError, match=r"Unknown adapter.*'nope'.*registered adapters: .*opti.*zero-shot"):
        compare(m, TASKS, "opti,nope", out=out, **kw)
    with pytest.raises(ValueError, match=r"Unknown task 'reach_middle'.*Valid tasks: reach_bottom_left"):
        compare(m, "reach_middle", "opti", out=out, **kw)
    with pytest.raises(ValueError, match="No model 'no-such-model'"):
        compare("no-such-model", TASKS, "opti", out=out, **kw)
    with pytest.raises(ValueError, match=r"--set for opti: .*'betaa' \(did you mean 'beta'"):
        compare(m, TASKS, "opti", out=out, config={"opti": {"betaa": 1}}, **kw)
    with pytest.raises(ValueError, match="per-adapter 'episodes' would give cells unequal budgets"):
        compare(m, TASKS, "opti", out=out, config={"opti": {"episodes": 10}}, **kw)
    with pytest.raises(ValueError, match="--set for adapter\\(s\\) not in the comparison: rela"):
        compare(m, TASKS, "opti", out=out, config={"rela": {"lr": 1}}, **kw)
    with pytest.raises(ValueError, match="--oracle for task 'reach_bottom_left', which is not compared"):
        compare(m, TASKS, "opti", out=out, **{**kw, "oracle": {"reach_bottom_left": 1.0}})
    assert not out.exists()
    with pytest.raises(ValueError, match="another episodes, budget_steps, budget_labels"):
        compare(m, TASKS, ADAPTERS, out=local_run.out, **{**KW, "episodes": 4})
    with pytest.raises(ValueError, match=r"ADAPTER\.KEY=VALUE"):
        parse_overrides(["beta=0.2"])
    parsed = parse_overrides(["opti.beta=0.2", "opti.mode=ts"])  # text, typed by the adapter's config
    assert parsed == {"opti": {"beta": "0.2", "mode": "ts"}}
    from bfm_gym.adapters.opti import OptiConfig

    cfg = OptiConfig.from_dict(parsed["opti"])
    assert (cfg.beta, cfg.mode) == (0.2, "ts")


def test_cli_compare(model_dir: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "bfm_gym.cli.main", "compare", "--model", str(model_dir)]
    proc = subprocess.run(
        [*base, "--tasks", "reach_top_left", "--adapters", "zero-shot", "--seeds", "1", "--episodes", "2",
         "--max-episode-steps", "20", "--workers", "1", "--oracle", "reach_top_left=1.5",
         "--bootstrap-reps", "100", "--out", str(tmp_path / "cli"), "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "zero-shot" in proc.stdout and "1 cells ran" in proc.stdout
    report = (tmp_path / "cli" / "report.md").read_text()
    assert "--oracle reach_top_left=1.5" in report and len(_table(tmp_path / "cli")) == 2
    bad = subprocess.run([*base, "--tasks", "reach_top_left", "--adapters", "nope", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "registered adapters:" in bad.stderr and "zero-shot" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_label_cap_stops_cells_and_limits_scores(model_dir: Path, tmp_path: Path) -> None:
    res = compare(str(model_dir), "reach_top_left", "opti", out=tmp_path / "cap", workers=1,
                  **{**KW, "seeds": 1, "config": None, "max_labels": 45})
    assert [(r["labels_used"], r["within_budget"]) for r in res.rows] == [(30, True), (60, False)]
    assert res.cells[0]["budget_labels"] == 45 and res.cells[0]["episodes"] == 2
    final = res.aggregates["checkpoints"][-1]["adapters"]["opti"]["oracle"]["iqm"]
    assert final["value"] == pytest.approx(res.rows[0]["eval_return"] / 2.0)  # the point after episode 0
    assert res.rows[1]["eval_return"] is not None  # the last episode's point exists but is over the cap
    assert "--max-labels 45" in (tmp_path / "cap" / "report.md").read_text()


def test_zero_shot_level_is_the_mean_of_the_zero_shot_cells(tmp_path: Path) -> None:
    import json

    from bfm_gym.experiments.compare import CompareSpec, cell_name
    from bfm_gym.experiments.compare.scoring import _levels

    spec = CompareSpec(model="m", domain="point_mass_maze", tasks=("point_mass_maze-reach_top_left",),
                       adapters=("zero-shot", "opti"), seeds=(0, 1), episodes=2, max_episode_steps=None,
                       episode_length=1000, budget_steps=2000, budget_labels=2000,
                       configs={"zero-shot": {"online_labels": 0}, "opti": {}}, oracle={},
                       checkpoints=(2,), eval_episodes=0)  # unpaired scoring, the former protocol
    returns = {0: [0.0, 800.0], 1: [600.0, 600.0]}
    for adapter in spec.adapters:
        for seed in spec.seeds:
            cell = tmp_path / "cells" / cell_name(adapter, spec.tasks[0], seed)
            cell.mkdir(parents=True)
            (cell / "summary.json").write_text(json.dumps({"zero_shot": 5.0}))  # one eval episode
            (cell / "records.jsonl").write_text(
                "".join(json.dumps({"return": r}) + "\n" for r in returns[seed]))
    levels, per_seed = _levels(spec, tmp_path)
    assert per_seed[spec.tasks[0]] == [400.0, 600.0]
    assert levels[spec.tasks[0]] == 500.0
    # without the zero-shot adapter in the grid: the evaluation episodes' level
    spec2 = CompareSpec(**{**spec.__dict__, "adapters": ("opti",)})
    assert _levels(spec2, tmp_path)[0][spec.tasks[0]] == 5.0
    # paired evaluation: always the zero-shot z on the fixed start states, never training returns
    spec3 = CompareSpec(**{**spec.__dict__, "eval_episodes": 5})
    assert _levels(spec3, tmp_path)[0][spec.tasks[0]] == 5.0


def test_score_window_averages_the_last_episodes_within_the_budget() -> None:
    from bfm_gym.experiments.compare.scoring import _score_at

    recs = [{"return": r, "env_steps": 10 * (i + 1), "labels_used": 0} for i, r in enumerate([1.0, 2.0, 6.0, 9.0])]
    assert _score_at(recs, 30, 100)["return"] == 6.0
    assert _score_at(recs, 30, 100, window=2)["return"] == 4.0
    assert _score_at(recs, 30, 100, window=10)["return"] == 3.0
    assert _score_at(recs, 5, 100, window=2) is None


def test_a_budget_below_the_first_episode_scores_the_policy_before_any_step() -> None:
    """An adapter whose first episode costs more than the budget (LoLA's lookahead rollouts
    count) is scored by its evaluation before its first env step, not NaN."""
    from bfm_gym.experiments.compare.scoring import _score_at

    recs = [{"return": 1.0, "env_steps": 3000, "labels_used": 0, "eval_return": 7.0,
             "initial_eval_return": 4.0},
            {"return": 2.0, "env_steps": 6000, "labels_used": 0, "eval_return": 8.0}]
    assert _score_at(recs, 1000, 10**9, evaluation=True)["return"] == 4.0
    assert _score_at(recs, 1000, 10**9, evaluation=True)["env_steps"] == 0
    assert _score_at(recs, 3000, 10**9, evaluation=True)["return"] == 7.0
    assert _score_at([{k: v for k, v in recs[0].items() if k != "initial_eval_return"}], 1000, 10**9,
                     evaluation=True) is None  # a run from before the initial evaluation


def _children(pid: int) -> list[int]:
    kids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:  # the process ended while we looked
            continue
        if int(fields.get("PPid", "0")) == pid:
            kids.append(int(status.parent.name))
    return kids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_workers_end_when_compare_is_killed(model_dir: Path, tmp_path: Path) -> None:
    """`kill -9` of compare must not leave pool workers writing into cells the rerun resumes."""
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "bfm_gym.cli.main", "compare", "--model", str(model_dir),
         "--tasks", "reach_top_left,reach_top_right", "--adapters", "opti", "--seeds", "2",
         "--episodes", "50", "--workers", "2", "--out", str(tmp_path / "k"), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline:  # wait for the two cells to be running
            workers = [k for k in _children(proc.pid) if "spawn_main" in _cmdline(k)]
            if len(workers) >= 2 and len(list((tmp_path / "k" / "cells").glob("*"))) >= 2:
                break
            time.sleep(0.2)
        assert len(workers) >= 2, "the pool never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 20
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "orphaned workers still running"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_paired_evaluation_scores_every_cell_on_the_same_start_states(local_run: CompareResult) -> None:
    out, spec = local_run.out, local_run.spec
    assert spec.eval_episodes == 5 and spec.eval_steps() == [30, 90]
    agg = json.loads((out / "aggregates.json").read_text())
    assert agg["score_source"] == "evaluation" and agg["evaluation"]["counted_in_budget"] is False
    for task in spec.tasks:
        for seed in spec.seeds:
            sums = {a: json.loads((out / "cells" / cell_name(a, task, seed) / "summary.json").read_text())
                    for a in spec.adapters}
            assert sums["opti"]["evaluation"]["initial_obs"] == sums["zero-shot"]["evaluation"]["initial_obs"]
            assert sums["opti"]["zero_shot_returns"] == sums["zero-shot"]["zero_shot_returns"]
            # the zero-shot adapter's frozen z scores exactly the zero-shot level, start by start
            recs = [json.loads(line) for line in
                    (out / "cells" / cell_name("zero-shot", task, seed) / "records.jsonl").read_text().splitlines()]
            assert [r["episode"] for r in recs if "eval_returns" in r] == [0, 2]  # before budgets 30 and 90
            assert all(r["eval_returns"] == sums["zero-shot"]["zero_shot_returns"] for r in recs if "eval_returns" in r)
        level = agg["zero_shot"][task]["level"]
        assert level == pytest.approx(sum(
            json.loads((out / "cells" / cell_name("opti", task, s) / "summary.json").read_text())["zero_shot"]
            for s in spec.seeds) / len(spec.seeds))
        # paired differences of the zero-shot adapter are exactly zero
        assert agg["paired_vs_zero_shot"]["zero-shot"][task]["mean_difference"] == 0.0
        assert agg["paired_vs_zero_shot"]["zero-shot"][task]["pairs"] == 2 * 5
    cells = json.loads((out / "cells.json").read_text())
    assert {c["eval_points"] for c in cells} == {2} and {c["env_steps"] for c in cells} == {90}
    final = agg["checkpoints"][-1]["adapters"]["opti"]["oracle"]["iqm"]  # top_left only (--oracle 2.0)
    rows = [r for r in local_run.rows if r["adapter"] == "opti" and r["episode"] == 2
            and r["task"].endswith("top_left")]
    assert final["value"] == pytest.approx(sum(r["eval_return"] / 2.0 for r in rows) / 2)  # 2 seeds
    report = (out / "report.md").read_text()
    assert "Scores are paired evaluations" in report and "not counted in the budget" in report
    assert "start state by start state" in report


def test_the_report_says_which_adapters_read_dataset_labels(model_dir: Path) -> None:
    """OpTI-BFM reads none unless warm-started; the adapters that start from the zero-shot z do."""
    from bfm_gym.experiments.compare.report import _uses_dataset_labels
    from bfm_gym.experiments.compare.spec import plan

    cold = plan(str(model_dir), TASKS, "zero-shot,opti,rela,lola", seeds=1, episodes=1)
    warm = plan(str(model_dir), TASKS, "opti", seeds=1, episodes=1, config={"opti": {"warm_start": 5}})
    assert {a: _uses_dataset_labels(cold, a) for a in cold.adapters} == {
        "zero-shot": True, "opti": False, "rela": True, "lola": True}
    assert _uses_dataset_labels(warm, "opti")


def test_time_to_oracle_follows_from_the_evaluation_rows(local_run: CompareResult) -> None:
    """aggregates.json's time to 90 % of the oracle equals a recomputation from results.csv's
    evaluation rows, and the report shows it."""
    from bfm_gym.experiments.compare.time_to_oracle import summarize_time_to_oracle, time_to_fraction

    out = local_run.out
    spec = json.loads((out / "compare.json").read_text())
    tt = json.loads((out / "aggregates.json").read_text())["time_to_oracle"]
    assert tt["fraction"] == 0.9
    curves: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
    oracle: dict[str, float] = {}
    for r in local_run.rows:
        if r["eval_return"] is None or not r["within_budget"]:
            continue
        oracle[r["task"]] = r["oracle"]
        curves.setdefault((r["adapter"], r["task"], r["seed"]), []).append((r["env_steps"], r["eval_return"]))
    assert curves
    for adapter in spec["adapters"]:
        expected = summarize_time_to_oracle(
            {t: [{"seed": s, **time_to_fraction(curves.get((adapter, t, s), []), oracle[t])} for s in spec["seeds"]]
             for t in spec["tasks"]}, spec["episode_length"])
        assert tt["adapters"][adapter] == expected
    report = (out / "report.md").read_text()
    assert "## Time to 90 % of the oracle" in report
    table = report.split("## Time to 90 % of the oracle")[1].split("\n## ")[0]
    assert "| adapter | task | reached | episodes to reach | held to the end |" in table
    assert table.count("\n| ") == 1 + len(spec["adapters"]) * len(spec["tasks"])  # the header and one row per cell


def test_cells_name_the_cpu_kind_that_ran_them(local_run: CompareResult) -> None:
    """Every record names its CPU kind; cells.json and the report list them, and a comparison
    whose cells ran on different kinds says that they are not paired."""
    from bfm_gym.experiments.compare.report import _machines_md
    from bfm_gym.utils.machine import cpu_kind, numerics_kind

    assert numerics_kind().startswith(cpu_kind())

    out = local_run.out
    recs = [json.loads(line) for line in (out / "cells" / CELL / "records.jsonl").read_text().splitlines()]
    assert {r["cpu_kind"] for r in recs} == {numerics_kind()}
    assert json.loads((out / "cells" / CELL / "summary.json").read_text())["cpu_kinds"] == [numerics_kind()]
    cells = json.loads((out / "cells.json").read_text())
    assert {tuple(c["cpu_kinds"]) for c in cells} == {(numerics_kind(),)}
    report = (out / "report.md").read_text()
    assert f"CPU kind of the cells' episodes: {numerics_kind()} (8 cells)." in report and "Warning" not in report
    mixed = _machines_md([{"cpu_kinds": ["avx2"]}, {"cpu_kinds": ["avx512_bf16"]}, {}])
    assert "avx2 (1 cells), avx512_bf16 (1 cells), not recorded (1 cells)" in mixed[0]
    assert "Warning: more than one kind of CPU" in mixed[0] and "not paired" in mixed[0]
    resumed = _machines_md([{"cpu_kinds": ["avx2", "avx512_bf16"]}])  # one cell resumed elsewhere
    assert "Warning" in resumed[0]
    assert "Warning" not in _machines_md([{"cpu_kinds": ["avx2"]}, {}])[0]  # old cells: not recorded
