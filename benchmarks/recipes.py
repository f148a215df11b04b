"""Which FB recipe buys the most zero-shot return per CPU-hour: one domain, one budget.

    python benchmarks/recipes.py --dataset data/point_mass_maze-rnd \\
        --extra-dataset data/point_mass_maze-random --updates 30000 --stages 3 \\
        --workdir runs/recipes --out benchmarks/results/recipes_maze_30k.json

Each recipe changes one thing of the shipped maze recipe (width, batch, z_dim, learning
rates, data mix); the last row is the maze's ``cpu`` preset before stop 27. Every recipe trains
with the same seed for the same number of updates, in ``--stages`` equal stages; after each
stage the model is evaluated zero-shot exactly as ``benchmarks/zero_shot.py`` does
(``--episodes`` per task, the domain's benchmark tasks) and the CPU time spent training so far
is recorded. The table reports, per
recipe, the return after each stage, the CPU-hours it cost, and the return per CPU-hour at
the end; the curve shows whether a recipe is still rising.

A stage resumes the run of the stage before (exact resume), and a finished stage is kept in
``--workdir/<recipe>/stages.json``: a rerun resumes, and two processes given disjoint
``--recipes`` share the cores (``--merge-only`` then writes the table).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _report import command, finish_plot, machine, write_report

from bfm_gym.utils.io import write_json_atomic
from bfm_gym.utils.machine import cpu_kind, cpu_model

os.environ.setdefault("MUJOCO_GL", "egl")

SHIPPED = {"z_dim": 100, "lr_b": 1e-4, "lr_actor": 1e-4}
"""How the shipped point_mass_maze model was trained (its card): the ``cpu`` preset with these
overrides, on RND data mixed with uniform-random data."""
RECIPES: dict[str, dict] = {
    "shipped maze recipe": {"overrides": SHIPPED, "extra_data": True},
    "F and actor 512 wide": {"overrides": {**SHIPPED, "f_hidden_dim": 512, "actor_hidden_dim": 512},
                             "extra_data": True},
    "batch 1024": {"overrides": {**SHIPPED, "batch_size": 1024}, "extra_data": True},
    "z_dim 50": {"overrides": {**SHIPPED, "z_dim": 50}, "extra_data": True},
    "RND data only": {"overrides": SHIPPED},
    "lr_b = lr_actor = 1e-5": {"overrides": {**SHIPPED, "lr_b": 1e-5, "lr_actor": 1e-5},
                               "extra_data": True},
    "old maze cpu preset": {"overrides": {"z_dim": 50, "lr_b": 1e-5, "lr_actor": 1e-5}},
}
"""Recipe name -> the ``cpu`` preset's overrides, and whether ``--extra-dataset`` is mixed in.
Each row after the first changes one thing of the shipped maze recipe (the first row); the last
is the maze's ``cpu`` preset as it was until stop 27 (z_dim 50, lr 1e-5, RND data only). Since
then the maze's ``cpu`` preset is z_dim 100 with lr 1e-4, so the first row is that preset on
the mixed data, and every row spells its values out."""


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def run_recipe(name: str, args: argparse.Namespace) -> list[dict]:
    """Trains ``name`` stage by stage (resuming), evaluating after each; cached per stage."""
    from bfm_gym.evaluation.report import zero_shot_report
    from bfm_gym.pretraining import pretrain

    recipe = RECIPES[name]
    folder = Path(args.workdir) / slug(name)
    cache = folder / "stages.json"
    stages: list[dict] = json.loads(cache.read_text()) if cache.is_file() else []
    data = [args.dataset, *([args.extra_dataset] if recipe.get("extra_data") else [])]
    todo = range(len(stages) + 1, args.stages + 1)
    if todo and recipe.get("extra_data") and not args.extra_dataset:
        raise SystemExit(f"recipe {name!r} mixes in a second dataset: give --extra-dataset")
    per_stage = args.updates // args.stages
    for k in todo:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        out = pretrain(data, folder / "model", config=args.config, overrides=recipe["overrides"],
                       updates=per_stage * k, seed=args.seed, eval_every=0, progress=False,
                       threads=1, checkpoint_every=per_stage)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        report = zero_shot_report(str(out), episodes=args.episodes, seed=args.seed)
        stages.append({
            "updates": per_stage * k,
            "train_cpu_seconds": round(cpu + (stages[-1]["train_cpu_seconds"] if stages else 0.0), 1),
            "train_wall_seconds": round(wall + (stages[-1]["train_wall_seconds"] if stages else 0.0), 1),
            "mean_over_tasks": round(report["mean_over_tasks"], 1),
            "tasks": {t: round(v["mean"], 1) for t, v in report["tasks"].items()},
        })
        write_json_atomic(cache, stages)
        print(f"{name}: {per_stage * k} updates, mean {stages[-1]['mean_over_tasks']}, "
              f"{stages[-1]['train_cpu_seconds'] / 3600:.2f} CPU-h", flush=True)
    return stages


def summarize(name: str, stages: list[dict], data: list[str], common: int) -> dict:
    """A row of the table: the curve, its end, and its return at the ``common`` budget."""
    last = stages[-1]
    at = next((st for st in stages if st["updates"] == common), None)
    hours = last["train_cpu_seconds"] / 3600
    return {"recipe": name, "overrides": RECIPES[name]["overrides"], "data": data,
            "stages": stages, "updates": last["updates"], "final_mean": last["mean_over_tasks"],
            "cpu_hours": round(hours, 3),
            "return_per_cpu_hour": round(last["mean_over_tasks"] / hours, 1) if hours else None,
            "mean_at_common_budget": at["mean_over_tasks"] if at else None,
            "cpu_hours_at_common_budget": round(at["train_cpu_seconds"] / 3600, 3) if at else None,
            "still_rising": len(stages) > 1 and last["mean_over_tasks"] > stages[-2]["mean_over_tasks"]}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row in rows:
        hours = [s["train_cpu_seconds"] / 3600 for s in row["stages"]]
        ax.plot(hours, [s["mean_over_tasks"] for s in row["stages"]], marker="o", label=row["recipe"])
    ax.grid(alpha=0.3)
    finish_plot(fig, ax, path, xlabel="training CPU-hours (1 torch thread)",
                ylabel="zero-shot return, mean over tasks",
                title="FB recipes: zero-shot return against training cost", legend_size=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--extra-dataset", default=None)
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help="Comma-separated recipe names (default: all).")
    parser.add_argument("--merge-only", action="store_true",
                        help="Only write the table from the stages already in --workdir.")
    parser.add_argument("--workdir", default="runs/recipes")
    parser.add_argument("--out", default="benchmarks/results/recipes.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    names = [n for n in args.recipes.split(",") if n]
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        raise SystemExit(f"unknown recipes {unknown}; known: {list(RECIPES)}")
    if args.updates % args.stages:
        raise SystemExit("--updates must be a multiple of --stages")
    if not args.merge_only:
        for name in names:
            run_recipe(name, args)  # trains the stages not cached yet
    per_stage = args.updates // args.stages
    cached = {}
    for name in RECIPES:  # every row with finished stages of this stage size, any number of them
        cache = Path(args.workdir) / slug(name) / "stages.json"
        stages = json.loads(cache.read_text()) if cache.is_file() else []
        if stages and stages[0]["updates"] == per_stage:
            cached[name] = stages
    common = min((st[-1]["updates"] for st in cached.values()), default=0)
    rows = [summarize(name, stages, [args.dataset, *([args.extra_dataset] if RECIPES[name].get(
        "extra_data") else [])], common) for name, stages in cached.items()]
    report = {"benchmark": "recipes", "command": command(),
              "machine": machine(cpu=f"{cpu_model()} ({cpu_kind()})", threads=1,
                                 load=os.getloadavg()),
              "updates": args.updates, "stages": args.stages, "episodes": args.episodes,
              "common_budget_updates": common,
              "seed": args.seed, "config": args.config, "rows": rows,
              "missing": [n for n in RECIPES if n not in {r["recipe"] for r in rows}]}
    if rows:
        best = max(rows, key=lambda r: r["return_per_cpu_hour"] or 0.0)
        report["best_return_per_cpu_hour"] = best["recipe"]
        report["best_final_return"] = max(rows, key=lambda r: r["final_mean"])["recipe"]
        print(f"{'recipe':28s} {'updates':>7s} {'return':>8s} {'CPU-h':>6s} {'return/CPU-h':>12s} "
              f"{'at ' + str(common):>9s} rising")
        for r in rows:
            print(f"{r['recipe']:28s} {r['updates']:7d} {r['final_mean']:8.1f} {r['cpu_hours']:6.2f} "
                  f"{r['return_per_cpu_hour'] or 0.0:12.1f} {r['mean_at_common_budget']:9.1f} "
                  f"{r['still_rising']}")
        plot(rows, Path(args.out).with_suffix(".png"))
    write_report(args.out, report)


if __name__ == "__main__":
    main()
