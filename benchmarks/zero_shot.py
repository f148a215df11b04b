"""Zero-shot quality of BFMs: 10 episodes per task, 95 % intervals, JSON out.

Two modes:

* ``--models walker,point_mass_maze`` (shipped names or model folders): evaluates
  each model on every task of its domain with its shipped inference samples and
  checks the quality floors (maze: mean over the four reach tasks >= 500; walker:
  mean over stand/walk/run/flip >= 450).
* ``--compare-variants --dataset DIR --updates N``: trains plain FB, AR-FB
  (``ar_blocks=2``), FB-AW (``actor_loss=awr``) and FB-AWARE (both) on the same
  data with the same budget and seed, then evaluates each the same way.
* ``--compare-families --dataset DIR --updates N``: trains an FB and a HILP model
  (``--config`` preset of each family) on the same data with the same update budget
  and seed, then evaluates both the same way.

Models of several families (``--models walker,runs/walker-hilp``) are printed side by
side per task (and stored under ``side_by_side``).

    python benchmarks/zero_shot.py --models point_mass_maze --out benchmarks/results/zero_shot.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _report import command, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

VARIANTS = {
    "FB": {},
    "AR-FB": {"ar_blocks": 2},
    "FB-AW": {"actor_loss": "awr"},
    "FB-AWARE": {"ar_blocks": 2, "actor_loss": "awr"},
}


def evaluate_model(model: str, episodes: int, seed: int) -> dict:
    from bfm_gym.evaluation.report import zero_shot_report

    return zero_shot_report(model, episodes=episodes, seed=seed)


def compare_variants(dataset: str, updates: int, episodes: int, seed: int, workdir: Path,
                     config: str) -> list[dict]:
    from bfm_gym.pretraining import pretrain

    rows = []
    for name, overrides in VARIANTS.items():
        start = time.perf_counter()
        out = pretrain(dataset, workdir / name, config=config, overrides=overrides,
                       updates=updates, seed=seed, eval_every=0, progress=False)
        row = evaluate_model(str(out), episodes, seed)
        row.update(variant=name, overrides=overrides, train_seconds=round(time.perf_counter() - start, 1))
        rows.append(row)
        print(name, row["mean_over_tasks"], flush=True)
    return rows


def compare_families(dataset: str, updates: int, episodes: int, seed: int, workdir: Path,
                     config: str) -> list[dict]:
    from bfm_gym.pretraining import pretrain

    rows = []
    for family in ("fb", "hilp"):
        start = time.perf_counter()
        out = pretrain(dataset, workdir / family, config=config, family=family, updates=updates,
                       seed=seed, eval_every=0, progress=False)
        row = evaluate_model(str(out), episodes, seed)
        row.update(train_seconds=round(time.perf_counter() - start, 1), updates=updates)
        rows.append(row)
        print(family, row["mean_over_tasks"], flush=True)
    return rows


def side_by_side(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """``{domain: {task: {"model (family)": mean}}}`` plus a ``mean`` row per domain."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        label = f"{row['model']} ({str(row.get('family') or '?').removeprefix('bfm_gym.')})"
        domain = table.setdefault(row["domain"], {})
        for task, result in row["tasks"].items():
            domain.setdefault(task, {})[label] = round(result["mean"], 1)
        domain.setdefault("mean", {})[label] = row["mean_over_tasks"]
    return table


def print_side_by_side(table: dict[str, dict[str, dict[str, float]]]) -> None:
    for domain, tasks in table.items():
        labels = list(next(iter(tasks.values())))
        print(f"\n{domain}\n| task | " + " | ".join(labels) + " |")
        print("|---" * (len(labels) + 1) + "|")
        for task, values in tasks.items():
            print(f"| {task} | " + " | ".join(f"{values.get(m, float('nan')):.1f}" for m in labels) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare-variants", action="store_true")
    parser.add_argument("--compare-families", action="store_true")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--workdir", default="runs/zero_shot_variants")
    parser.add_argument("--out", default="benchmarks/results/zero_shot.json")
    args = parser.parse_args()
    report: dict = {
        "benchmark": "zero_shot",
        "command": command(),
        "machine": machine(),
        "models": [evaluate_model(m, args.episodes, args.seed) for m in args.models.split(",") if m],
    }
    if args.compare_variants:
        if not args.dataset:
            parser.error("--compare-variants needs --dataset")
        report["variants"] = compare_variants(args.dataset, args.updates, args.episodes, args.seed,
                                              Path(args.workdir), args.config)
    if args.compare_families:
        if not args.dataset:
            parser.error("--compare-families needs --dataset")
        report["families"] = compare_families(args.dataset, args.updates, args.episodes, args.seed,
                                              Path(args.workdir), args.config)
    for row in report["models"]:
        print(row["model"], row["mean_over_tasks"], row.get("floor_met"))
    rows = report["models"] + report.get("families", [])
    if len(rows) > 1:
        report["side_by_side"] = side_by_side(rows)
        print_side_by_side(report["side_by_side"])
    write_report(args.out, report)


if __name__ == "__main__":
    main()
