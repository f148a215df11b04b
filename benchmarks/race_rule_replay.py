"""Replays the ``select="race"`` decisions of recorded comparisons under today's race rule.

``race`` decides only what evaluation holds. Its real episodes alternate between the zero-shot
z and the learned latent whatever it decides, and learning never sees its decision, so a
cell's episodes and returns do not depend on the rule. A stricter rule, one that holds the
learned latent only at evaluation points where the recorded rule did, therefore scores
exactly: where both hold the learned latent, the recorded evaluation is its score; where only
the recorded rule did, the score is the zero-shot z's evaluation on the same start states
(the zero-shot cell of the same seed).

Today's rule (:class:`bfm_gym.adapters._common.EpisodeSelection`, since stop 26) holds the
learned latent while its last ``window`` episodes beat the zero-shot episodes on the median
AND the mean. The comparisons committed before it ran with the median alone. This script
re-derives the median rule's decisions from the returns and checks them against what the
recorded evaluations held (an evaluation equal to the zero-shot z's held the zero-shot z),
asks today's rule (the project's own class) at every evaluation point, checks that it is
stricter, and scores both per task as ``bfm-gym compare`` does: the paired gain at the last
evaluation point within the budget, mean difference over seeds / the zero-shot level, and
each cell's deepest dip below the zero-shot z along its evaluation curve.

    python benchmarks/race_rule_replay.py --adapter lola \\
        --compare benchmarks/results/compare_lola_race --out benchmarks/results/race_rule_replay.json

Each ``--compare`` folder holds ``results.csv`` (one model) or model sub-folders with one;
``--budget`` is the scoring budget in episodes (default: each folder's ``compare.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from _report import command, machine, write_report

from bfm_gym.adapters._common import EpisodeSelection

WINDOW = 3
"""``select_window`` of the replayed comparisons (the default; they did not set it)."""


def median_rule(returns: list[float]) -> bool:
    """The race rule before stop 26: the learned latent's last ``WINDOW`` episodes (odd
    episodes) beat all zero-shot episodes (even ones) on the median alone."""
    base, challenger = returns[0::2], returns[1::2][-WINDOW:]
    return bool(base and challenger and np.median(challenger) > np.median(base))


def todays_rule(returns: list[float]) -> bool:
    """Whether :class:`EpisodeSelection` (today's code) holds the learned latent."""
    zero, learned = np.zeros(1, np.float32), np.ones(1, np.float32)
    sel = EpisodeSelection("race", zero, window=WINDOW)
    for ret in returns:
        sel.add(sel.episode_latent(learned), ret)
    return bool(sel.eval_latent(learned)[0] == 1.0)


def model_folders(root: Path) -> list[Path]:
    if (root / "results.csv").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "results.csv").is_file())


def replay(folder: Path, adapter: str, budget_episodes: int | None) -> dict:
    """Per task: both rules' paired gains; per cell: dips; and the decision checks."""
    spec = json.loads((folder / "compare.json").read_text())
    budget = (budget_episodes or spec["episodes"]) * spec["episode_length"]
    rows = list(csv.DictReader((folder / "results.csv").open()))
    zero: dict[tuple[str, str], float] = {}
    cells: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        key = (r["task"], r["seed"])
        if r["adapter"] == "zero-shot" and r["eval_return"]:
            zero.setdefault(key, float(r["eval_return"]))
        elif r["adapter"] == adapter:
            cells[key].append(r)
    checked = mismatched = stricter_violations = 0
    per_task: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    dips: dict[str, list[float]] = defaultdict(list)
    for (task, seed), eps in sorted(cells.items()):
        eps.sort(key=lambda r: int(r["episode"]))
        z0 = zero[(task, seed)]
        returns = [float(r["return"]) for r in eps]
        curve = {"median": [z0], "median_and_mean": [z0]}  # before any episode: the zero-shot z
        for i, r in enumerate(eps):
            if not r["eval_return"] or int(r["env_steps"]) > budget:
                continue
            ev = float(r["eval_return"])
            old, new = median_rule(returns[: i + 1]), todays_rule(returns[: i + 1])
            checked += 1
            mismatched += old != (abs(ev - z0) > 1e-3)  # the recorded evaluation held the learned z
            stricter_violations += new and not old
            curve["median"].append(ev if old else z0)
            curve["median_and_mean"].append(ev if new else z0)
        for rule, vals in curve.items():
            per_task[rule][task].append((vals[-1] - z0, z0))
            dips[rule].append(max(0.0, 1.0 - min(vals) / z0) if z0 > 0 else 0.0)
    rules = {}
    for rule, tasks in per_task.items():
        gains = {t: float(np.mean([d for d, _ in v]) / np.mean([z for _, z in v]))
                 for t, v in tasks.items() if np.mean([z for _, z in v]) > 0}  # fmt: skip
        rules[rule] = {"per_task_gain": gains, "mean_dip_below_zero_shot": round(float(np.mean(dips[rule])), 4)}
    return {"model": spec["model"], "budget_env_steps": budget, "seeds": spec["seeds"],
            "evaluation_points_checked": checked,
            "recorded_decisions_the_median_rule_does_not_reproduce": mismatched,
            "points_where_todays_rule_holds_the_learned_z_and_the_recorded_one_did_not": stricter_violations,
            "rules": rules}  # fmt: skip


def summary(gains: dict[str, float]) -> dict:
    """Median, mean and worst of the per-task gains; tasks up and below (as ``families.md``
    counts them: any mean difference above or below 0, however small)."""
    v = list(gains.values())
    return {"tasks": len(v), "median_gain": round(statistics.median(v), 4), "mean_gain": round(float(np.mean(v)), 4),
            "worst_task": min(gains, key=gains.get), "worst_gain": round(min(v), 4),
            "tasks_up": sum(x > 0 for x in v), "tasks_below": sum(x < 0 for x in v)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="append", required=True, help="a compare results folder (repeatable)")
    parser.add_argument("--adapter", default="lola")
    parser.add_argument("--budget", type=int, default=None, help="episodes (default: the folder's)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    report: dict = {"benchmark": "race_rule_replay", "command": command(), "machine": machine(), "folders": {}}
    for root in args.compare:
        models = {p.name: replay(p, args.adapter, args.budget) for p in model_folders(Path(root))}
        bad = [m for m, r in models.items()
               if r["recorded_decisions_the_median_rule_does_not_reproduce"]
               or r["points_where_todays_rule_holds_the_learned_z_and_the_recorded_one_did_not"]]  # fmt: skip
        if bad:
            raise SystemExit(f"{root}: the replay is not exact for {bad} (see the checks); nothing written.")
        pooled = {rule: summary({f"{m}/{t}": g for m, r in models.items()
                                 for t, g in r["rules"][rule]["per_task_gain"].items()})
                  for rule in ("median", "median_and_mean")}  # fmt: skip
        for r in models.values():
            for rule in r["rules"].values():
                rule["per_task_gain"] = {t: round(g, 4) for t, g in rule["per_task_gain"].items()}
        report["folders"][root] = {"adapter": args.adapter, "all_tasks": pooled, "models": models}
        for rule, s in pooled.items():
            print(f"{root} {rule}: median {s['median_gain']:+.1%} mean {s['mean_gain']:+.1%} "
                  f"worst {s['worst_gain']:+.1%} ({s['worst_task']}), {s['tasks_up']} up, {s['tasks_below']} below")
    write_report(args.out, report)


if __name__ == "__main__":
    main()
