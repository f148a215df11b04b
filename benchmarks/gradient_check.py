"""Does F's value gradient lead to better policies? Every task of the shipped models.

For every benchmark task of each model, ``bfm_gym.evaluation.gradient_check``: the tangent
gradient of F's value of the task's reward at the zero-shot latent (on the states of the
zero-shot policy), then the zero-shot latent turned by a few degrees along it, played against
the zero-shot latent from the same start states. F predicts a gain for every such turn (that
is what its gradient says); the episodes say whether there is one. A gradient adapter (ReLA)
climbs this gradient, so the per-task verdict ("uphill", "downhill", "unclear") says, before
any adaptation is run, whether it has anything to climb.

With ``--compare DIR`` (a multi-model ``bfm-gym compare`` folder, its ``families.json``) the
report sets each task's measured gain along F's gradient next to each adapter's paired gain
from that comparison, with their rank correlation over tasks, and plots them. With
``--headroom`` (``latent_headroom.py`` JSONs) it adds the cosine between F's direction and the
direction to the best latent that search found, for tasks whose zero-shot latent is this
model's.

Resumable: a task already in ``--out`` with the same settings is skipped.

    OMP_NUM_THREADS=1 python benchmarks/gradient_check.py \\
        --models walker,cheetah,quadruped,point_mass_maze \\
        --compare benchmarks/results/compare_all_domains_5seeds \\
        --headroom benchmarks/results/latent_headroom_walker_stop40_large.json,benchmarks/results/latent_headroom.json \\
        --out benchmarks/results/gradient_check.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

from _report import adapter_gains, command, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"degrees": args.degrees, "seeds": args.seeds, "state_episodes": args.state_episodes,
            "max_states": args.max_states, "pessimism": args.pessimism,
            "random_directions": args.random_directions, "path": args.path,
            "seed": args.seed}  # fmt: skip


def rank_correlation(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None for fewer than 3 pairs."""
    if len(x) < 3:
        return None

    def ranks(v: list[float]) -> np.ndarray:
        a = np.asarray(v, dtype=np.float64)
        order = np.argsort(a, kind="stable")
        r = np.empty(len(a))
        r[order] = np.arange(len(a), dtype=np.float64)
        for value in np.unique(a):  # ties share their mean rank
            tie = a == value
            r[tie] = r[tie].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return round(float(np.corrcoef(rx, ry)[0, 1]), 3)


def best_latents(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """``{domain-task: [headroom rows]}`` from latent_headroom.py JSONs (the files may hold
    searches on other models of a domain; :func:`cos_to_best` picks this model's)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        for key, row in json.loads(path.read_text())["tasks"].items():
            rows.setdefault(key, []).append(row)
    return rows


def cos_to_best(bfm: Any, z0: np.ndarray, direction: np.ndarray,
                rows: list[dict[str, Any]]) -> float | None:  # fmt: skip
    """Cosine between F's direction and the great-circle direction from ``z0`` to the search's
    best latent, from the last row searched on this model (its zero-shot latent is ``z0``);
    None without one, or when that search kept the zero-shot latent."""
    mine = [r for r in rows if "best_z" in r and "zero_shot_z" in r and np.asarray(
        r["zero_shot_z"], np.float64) @ z0 / (np.linalg.norm(r["zero_shot_z"]) * np.linalg.norm(z0))
        >= 0.99]  # fmt: skip
    if not mine:
        return None
    row = mine[-1]
    from bfm_gym.evaluation.gradient_check import toward

    to_best = toward(z0, np.asarray(bfm.project(np.asarray(row["best_z"], np.float32))))
    return None if to_best is None else round(float(direction @ to_best), 3)


def run_task(bfm: Any, task: str, args: argparse.Namespace,
             headroom: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # fmt: skip
    from bfm_gym.envs.gym_env import env_info_of, make_task_env
    from bfm_gym.evaluation.gradient_check import gradient_check
    from bfm_gym.models.inference import reward_z

    domain = bfm.metadata.domain
    start = time.perf_counter()
    weights = reward_z(bfm, task=task, project=False)
    result = gradient_check(
        bfm, lambda: make_task_env(domain, task, env_info=env_info_of(bfm)), weights,
        task=f"{domain}-{task}", degrees=[float(d) for d in args.degrees.split(",")],
        seeds=range(2000, 2000 + args.seeds), state_episodes=args.state_episodes,
        max_states=args.max_states, pessimism=args.pessimism,
        random_directions=args.random_directions, path=args.path, seed=args.seed)  # fmt: skip
    row = result.to_dict()
    z0 = np.asarray(bfm.project(weights), np.float64)
    row["cos_f_direction_to_best_latent"] = cos_to_best(
        bfm, z0, np.asarray(row["direction"]), headroom.get(f"{domain}-{task}", []))
    row.update(domain=domain, settings=settings(args), seconds=round(time.perf_counter() - start, 1))
    return row


def summarise(rows: dict[str, dict[str, Any]], gains: dict[str, dict[str, float]],
              z_dim: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """Verdict counts, F's predicted vs measured gain at the smallest turn, and per adapter
    the rank correlation over tasks between the measured gain along F's gradient and the
    adapter's gain."""
    first = {k: int(np.argmin(r["degrees"])) for k, r in rows.items()}
    verdicts = [r["verdict"] for r in rows.values()]
    out: dict[str, Any] = {
        "tasks": len(rows),
        "verdicts": {v: verdicts.count(v) for v in ("uphill", "unclear", "downhill")},
        "median_f_predicted_gain": round(statistics.median(
            r["f_predicted_gain"][first[k]] for k, r in rows.items()), 4),
        "median_measured_gain": round(statistics.median(
            r["gain"][first[k]] for k, r in rows.items()), 4),
        "versus_random": {v: sum(r.get("versus_random") == v for r in rows.values())
                          for v in ("better", "unclear", "worse")},
        "median_random_degrees": _median([a for r in rows.values() for a in r.get("random_degrees", [])]),
        "median_random_gain": _median([g for r in rows.values() for g in r.get("random_gain", [])]),
        "median_gain_over_random": _median([r["gain_over_random"] for r in rows.values()
                                            if r.get("gain_over_random") is not None]),
        "random_direction_cos_spread": {d: round(1 / math.sqrt(n - 1), 3) for d, n in z_dim.items()},
        "adapters": {},
    }  # fmt: skip
    for adapter, per_task in gains.items():
        keys = [k for k in rows if k in per_task]
        x = [rows[k]["gain"][first[k]] for k in keys]
        y = [per_task[k] for k in keys]
        by_verdict = {v: [per_task[k] for k in keys if rows[k]["verdict"] == v]
                      for v in ("uphill", "unclear", "downhill")}  # fmt: skip
        out["adapters"][adapter] = {
            "tasks": len(keys),
            "rank_correlation_with_measured_gain": rank_correlation(x, y),
            "median_gain_by_verdict": {v: round(statistics.median(g), 4) if g else None
                                       for v, g in by_verdict.items()},
        }  # fmt: skip
    return out


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def plot(rows: dict[str, dict[str, Any]], gains: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(rows)
    first = {k: int(np.argmin(rows[k]["degrees"])) for k in keys}
    deg = rows[keys[0]]["degrees"][first[keys[0]]]
    domains = list(dict.fromkeys(rows[k]["domain"] for k in keys))
    panels = 2 + len(gains)
    fig, axes = plt.subplots(1, panels, figsize=(5.0 * panels, 4.4), squeeze=False)
    ax = axes[0][0]
    for domain in domains:
        mine = [k for k in keys if rows[k]["domain"] == domain]
        pred = [100 * rows[k]["f_predicted_gain"][first[k]] for k in mine]
        real = [100 * rows[k]["gain"][first[k]] for k in mine]
        err = np.array([[100 * (rows[k]["gain"][first[k]] - rows[k]["gain_ci95"][first[k]][0]),
                         100 * (rows[k]["gain_ci95"][first[k]][1] - rows[k]["gain"][first[k]])]
                        for k in mine]).T  # fmt: skip
        ax.errorbar(pred, real, yerr=err, fmt="o", capsize=2, label=domain)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("symlog", linthresh=20)
    ax.set_xlabel(f"F's predicted gain of a {deg:g} degree turn along its gradient (%)")
    ax.set_ylabel("measured gain, paired (%, 95 % interval)")
    ax.set_title("Does F's uphill lead uphill? One dot per task", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[0][1]
    lims = [0.0, 0.0]
    for domain in domains:
        mine = [k for k in keys if rows[k]["domain"] == domain and rows[k].get("random_gain")]
        x = [100 * float(np.mean(rows[k]["random_gain"])) for k in mine]
        y = [100 * rows[k]["gain"][first[k]] for k in mine]
        ax.plot(x, y, "o", label=domain)
        lims = [min([lims[0], *x, *y]), max([lims[1], *x, *y])]
    ax.plot(lims, lims, color="grey", lw=0.8, ls="--", label="as good as random turns")
    ax.set_xlabel("mean measured gain of random turns changing the actions as much (%)")
    ax.set_ylabel(f"measured gain of the {deg:g} degree turn along F's gradient (%)")
    ax.set_title("F's direction against random ones, equal action change (the control)",
                 fontsize=9)
    ax.legend(fontsize=7)
    for ax, (adapter, per_task) in zip(axes[0][2:], gains.items(), strict=True):
        for domain in domains:
            mine = [k for k in keys if rows[k]["domain"] == domain and k in per_task]
            ax.plot([100 * rows[k]["gain"][first[k]] for k in mine],
                    [100 * per_task[k] for k in mine], "o", label=domain)  # fmt: skip
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel(f"measured gain of the {deg:g} degree turn along F's gradient (%)")
        ax.set_ylabel(f"{adapter}'s paired gain in the comparison (%)")
        ax.set_title(f"{adapter} vs where F's gradient leads", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="walker,cheetah,quadruped,point_mass_maze")
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: "
                        "the benchmark tasks of each model's domain)")  # fmt: skip
    parser.add_argument("--degrees", default="5,10", help="turns along F's gradient, degrees")
    parser.add_argument("--seeds", type=int, default=20, help="paired start states (seeds 2000..)")
    parser.add_argument("--state-episodes", type=int, default=2)
    parser.add_argument("--max-states", type=int, default=2048)
    parser.add_argument("--pessimism", type=float, default=0.5,
                        help="head aggregation of F's value (0.5: ReLA's default)")
    parser.add_argument("--random-directions", type=int, default=4,
                        help="random tangent directions of the control, each turned as far as "
                        "changes the actions as much as the smallest turn along F's gradient")
    parser.add_argument("--path", choices=("full", "action"), default="full",
                        help="how z enters F's value: 'full' (ReLA's objective) or 'action' "
                        "(F held at the zero-shot latent: the deterministic policy gradient)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", type=Path, default=None,
                        help="a multi-model bfm-gym compare folder (families.json)")
    parser.add_argument("--adapters", default="rela",
                        help="adapters of --compare to set against the check (comma-separated; "
                        "ReLA is the one that climbs F's gradient)")  # fmt: skip
    parser.add_argument("--headroom", default="",
                        help="comma-separated latent_headroom.py JSONs (their best_z per task)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import torch

    import bfm_gym
    from bfm_gym.evaluation.report import benchmark_tasks

    torch.set_num_threads(1)
    headroom = best_latents([Path(p) for p in args.headroom.split(",") if p.strip()])
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    rows: dict[str, dict[str, Any]] = dict(old.get("tasks", {}))
    z_dim: dict[str, int] = dict(old.get("z_dim", {}))
    for model in args.models.split(","):
        bfm = bfm_gym.load(model)
        domain = bfm.metadata.domain
        z_dim[domain] = bfm.z_dim
        for task in args.tasks.split(",") if args.tasks else benchmark_tasks(domain):
            key = f"{domain}-{task}"
            if key in rows and rows[key].get("settings") == settings(args):
                continue
            rows[key] = run_task(bfm, task, args, headroom)
            r = rows[key]
            print(f"{key}: F predicts {100 * r['f_predicted_gain'][0]:+.1f} %, measured "
                  f"{100 * r['gain'][0]:+.1f} % [{100 * r['gain_ci95'][0][0]:+.1f}, "
                  f"{100 * r['gain_ci95'][0][1]:+.1f}] at {r['degrees'][0]:g} deg: {r['verdict']}, "
                  f"against random turns: {r['versus_random']} ({r['random_gain']}); "
                  f"cos to best {r['cos_f_direction_to_best_latent']} ({r['seconds']:.0f} s)")
            _write(args, rows, {}, z_dim)
    wanted = [a.strip() for a in args.adapters.split(",") if a.strip()]
    gains = {a: g for a, g in adapter_gains(args.compare).items() if a in wanted}
    report = _write(args, rows, gains, z_dim)
    plot(rows, gains, args.out.with_suffix(".png"))
    return report


def _write(args: argparse.Namespace, rows: dict[str, dict[str, Any]],
           gains: dict[str, dict[str, float]], z_dim: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    report = {"benchmark": "gradient_check", "command": command(),
              "machine": machine(torch_threads=1), "settings": settings(args),
              "compare": None if args.compare is None else str(args.compare),
              "headroom": args.headroom or None, "z_dim": z_dim,
              "summary": summarise(rows, gains, z_dim), "adapter_gains": gains, "tasks": rows}  # fmt: skip
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
