"""Latent headroom of the shipped models: the best return any z reaches, per task.

For every benchmark task of each model, a cross-entropy search over z started at the
zero-shot z (``bfm_gym.evaluation.headroom``: 12 latents x 3 start states per iteration,
6 iterations, 216 search episodes), a selection among the best latents found, the search's
final mean and the zero-shot z on 5 other start states, and a validation of the pick against
the zero-shot z on 10 fresh start states. The headroom ``(best - zero_shot) / zero_shot`` is a
lower bound on what latent adaptation can gain on that model and task, so it tells a model
limit apart from an adapter miss: an adapter target above the headroom cannot be met by any
latent adapter on this model; a target below it that an adapter misses is the adapter's.

With ``--compare DIR`` (a ``bfm-gym compare --model A --model B ...`` folder) the table adds
each adapter's paired gain from that comparison next to the headroom of the same task, and
the share of the headroom it captured.

Resumable: a task already in ``--out`` with the same search settings is skipped; rerun the
same command after a stop. Each task's row records its own search settings, so a domain can
be searched again with other settings (e.g. ``--models point_mass_maze --search-seeds 5``:
the maze's returns depend on the start room, and two start states overfit) into the same
file.

    OMP_NUM_THREADS=1 python benchmarks/latent_headroom.py \
        --models walker,cheetah,quadruped,point_mass_maze \
        --compare benchmarks/results/compare_all_domains \
        --out benchmarks/results/latent_headroom.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from _report import adapter_gains, command, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")


def run_task(model: str, bfm: Any, task: str, args: argparse.Namespace) -> dict[str, Any]:
    from bfm_gym.envs.gym_env import env_info_of, make_task_env
    from bfm_gym.evaluation.headroom import latent_headroom
    from bfm_gym.evaluation.zero_shot import task_z

    domain = bfm.metadata.domain
    start = time.perf_counter()
    result = latent_headroom(
        bfm, lambda: make_task_env(domain, task, env_info=env_info_of(bfm)),
        task_z(bfm, bfm.samples, task), task=f"{domain}-{task}", population=args.population,
        elites=args.elites, iterations=args.iterations, search_seeds=range(args.search_seeds),
        finalists=args.finalists, selection_seeds=range(500, 500 + args.selection),
        validation_seeds=range(1000, 1000 + args.validation), seed=args.seed, progress=True)
    return {**result.to_dict(), "model": model, "domain": domain, "search": _search(args),
            "seconds": round(time.perf_counter() - start, 1)}


def _search(args: argparse.Namespace) -> dict[str, int]:
    return {"population": args.population, "elites": args.elites, "iterations": args.iterations,
            "search_seeds": args.search_seeds, "finalists": args.finalists,
            "selection_seeds": args.selection, "validation_seeds": args.validation, "seed": args.seed}


def summarise(rows: dict[str, dict[str, Any]], gains: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per domain: the median headroom over its tasks, and per adapter its median gain and the
    median share of the headroom it captured."""
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for row in rows.values():
        by_domain.setdefault(row["domain"], []).append(row)
    summary: dict[str, Any] = {}
    for domain, items in by_domain.items():
        heads = [r["gain"] for r in items if r["gain"] is not None]
        entry: dict[str, Any] = {"tasks": len(items),
                                 "median_headroom": round(statistics.median(heads), 4) if heads else None,
                                 "adapters": {}}
        for adapter, per_task in gains.items():
            mine = [(per_task[r["task"]], r["gain"]) for r in items if r["task"] in per_task]
            if not mine:
                continue
            shares = [g / h for g, h in mine if h is not None and h > 0.05]
            entry["adapters"][adapter] = {
                "median_gain": round(statistics.median(g for g, _ in mine), 4),
                "median_share_of_headroom": round(statistics.median(shares), 3) if shares else None}
        summary[domain] = entry
    return summary


def plot(rows: dict[str, dict[str, Any]], gains: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = list(rows)
    adapters = list(gains)
    width = 0.8 / (1 + len(adapters))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * len(tasks) + 2), 4.5))
    x = np.arange(len(tasks))
    head = [100 * (rows[t]["gain"] or 0.0) for t in tasks]
    ax.bar(x - 0.4 + width / 2, head, width, color="lightgrey", edgecolor="black",
           label="headroom (best latent found)")
    for i, adapter in enumerate(adapters):
        ax.bar(x - 0.4 + (i + 1.5) * width, [100 * gains[adapter].get(t, float("nan")) for t in tasks],
               width, label=adapter)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(x, [t.replace("point_mass_maze", "maze") for t in tasks], rotation=60, ha="right",
                  fontsize=7)
    ax.set_ylabel("gain over the zero-shot z (%)")
    ax.set_title("Latent headroom (validated best latent of a large search) vs adapters' gains",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="walker,cheetah,quadruped,point_mass_maze")
    parser.add_argument("--tasks", default=None, help="Comma-separated task names (default: the "
                        "benchmark tasks of each model's domain).")
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--elites", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--search-seeds", type=int, default=3, help="Start states (reset seeds "
                        "0..N-1) every candidate is scored on.")
    parser.add_argument("--finalists", type=int, default=4)
    parser.add_argument("--selection", type=int, default=5, help="Start states (seeds 500..) of "
                        "the selection.")
    parser.add_argument("--validation", type=int, default=10, help="Fresh start states (seeds "
                        "1000..) of the validation.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch

    import bfm_gym
    from bfm_gym.evaluation.report import benchmark_tasks

    torch.set_num_threads(1)
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    rows: dict[str, dict[str, Any]] = dict(old.get("tasks", {}))
    for model in args.models.split(","):
        bfm = bfm_gym.load(model)
        domain = bfm.metadata.domain
        tasks = args.tasks.split(",") if args.tasks else benchmark_tasks(domain)
        for task in tasks:
            key = f"{domain}-{task}"
            if key in rows and (rows[key].get("search") or old.get("search")) == _search(args):
                continue  # done with these settings (other settings: searched again)
            rows[key] = run_task(model, bfm, task, args)
            r = rows[key]
            print(f"{key}: zero-shot {r['zero_shot_return']:.1f} -> best {r['best_return']:.1f} "
                  f"({100 * (r['gain'] or 0):+.1f} %, {r['seconds']:.0f} s)")
            _write(args, rows, {})
    gains = adapter_gains(args.compare)
    _write(args, rows, gains)
    plot(rows, gains, args.out.with_suffix(".png"))


def _write(args: argparse.Namespace, rows: dict[str, dict[str, Any]],
           gains: dict[str, dict[str, float]]) -> None:
    write_report(args.out, {
        "benchmark": "latent_headroom", "command": command(), "machine": machine(torch_threads=1),
        "search": _search(args),
        "compare": None if args.compare is None else str(args.compare),
        "summary": summarise(rows, gains), "adapter_gains": gains, "tasks": rows})


if __name__ == "__main__":
    main()
