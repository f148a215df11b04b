"""Latent adapters against the strongest weight fine-tuning baseline, across comparisons.

One ``bfm-gym compare`` already reports its latent adapters against its fine-tuning adapters
("Latent search against weight fine-tuning" in its report). This script answers the same
question across several comparison folders: the latent adapters of a tuned comparison
against fine-tuning baselines run in other folders (other settings, other seeds), per domain,
with the strongest baseline chosen per domain.

Each ``--entry`` names one method: ``DOMAIN/LABEL=FOLDER#ADAPTER``. Entries with the same
domain and label are one method whose seeds come from several folders (e.g. seed 0 from one
run and seeds 1-2 from another). A method is a weight baseline when its comparison ran the
adapter on the env's actions (``acts == "env"`` in ``compare.json``), else a latent adapter.

A run's score at a budget of B episodes is its last paired evaluation within B episodes of
env steps, divided by its own comparison's zero-shot level of the task (``results.csv``,
``eval_score_zero_shot``). Normalising each folder by its own zero-shot level lets runs from
two machines be compared: the walker's chaotic dynamics give the same seed's start states
different returns on an AVX2 and an avx512_bf16 CPU. Only the comparison's reported seeds
count (a tuned comparison's selection seeds do not). A run with no evaluation point within
the budget is left out: the comparison's own report falls back to the evaluation before the
run's first step, which ``results.csv`` does not hold (LoLA's first point comes after 2.6
episodes of budget, so at 1 episode it has none).

Per domain, the strongest baseline is the weight method with the highest mean score over the
domain's tasks (chosen on the reported seeds: the choice favours the baseline). Every latent
method is then compared to it per task (mean over seeds, and the probability of improvement
P(latent run > baseline run) averaged over tasks with a 95 % bootstrap CI).

    python benchmarks/latent_vs_weights.py --budget 20 \\
        --entry "walker/td3=benchmarks/results/compare_walker_td3#sb3-td3-finetune" \\
        --entry "walker/lola=benchmarks/results/compare_walker_tuned_latent#lola" \\
        --out benchmarks/results/latent_vs_weights.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from _report import command, machine, write_report

from bfm_gym.evaluation.aggregate import probability_of_improvement


def parse_entry(text: str) -> tuple[str, str, Path, str]:
    """``"walker/td3=DIR#sb3-td3-finetune"`` -> ``("walker", "td3", DIR, "sb3-td3-finetune")``."""
    head, sep, tail = text.partition("=")
    domain, slash, label = head.partition("/")
    folder, hash_, adapter = tail.rpartition("#")
    if not (sep and slash and hash_ and domain and label and folder and adapter):
        raise SystemExit(f"--entry expects DOMAIN/LABEL=FOLDER#ADAPTER; got {text!r}.")
    return domain.strip(), label.strip(), Path(folder.strip()), adapter.strip()


def run_scores(folder: Path, adapter: str, budget: int) -> tuple[str, dict[str, dict[int, float]]]:
    """``(acts, {task: {seed: score}})`` of one adapter's selected runs in a comparison folder.

    Raises:
        SystemExit: The folder is not a comparison, or does not hold the adapter.
    """
    spec_path, rows_path = folder / "compare.json", folder / "results.csv"
    if not spec_path.is_file() or not rows_path.is_file():
        raise SystemExit(f"{folder} is not a finished comparison folder (compare.json and results.csv).")
    spec = json.loads(spec_path.read_text())
    if adapter not in spec["adapters"]:
        raise SystemExit(f"{folder} has no adapter {adapter!r}; it has {', '.join(spec['adapters'])}.")
    seeds = {int(s) for s in spec["seeds"]}
    limit = budget * int(spec["episode_length"])
    last: dict[tuple[str, int], tuple[int, float]] = {}
    with rows_path.open() as f:
        for row in csv.DictReader(f):
            if row["adapter"] != adapter or row["selected"] != "True" or int(row["seed"]) not in seeds:
                continue
            if not row["eval_score_zero_shot"] or row["within_budget"] != "True":
                continue
            steps = int(row["env_steps"])
            key = (row["task"], int(row["seed"]))
            if steps <= limit and (key not in last or steps >= last[key][0]):
                last[key] = (steps, float(row["eval_score_zero_shot"]))
    scores: dict[str, dict[int, float]] = {}  # in the comparison's task order (the bootstrap's)
    for task in spec["tasks"]:
        for seed in sorted(seeds):
            if (task, seed) in last:
                scores.setdefault(task, {})[seed] = last[(task, seed)][1]
    return spec["acts"].get(adapter, "latent"), scores


def compare_domain(methods: dict[str, dict[str, Any]], reps: int) -> dict[str, Any]:
    """The strongest weight method of one domain and every latent method against it."""
    # task -> mean score over seeds, per method, computed once
    means = {k: {t: float(np.mean(list(v.values()))) for t, v in m["scores"].items() if v}
             for k, m in methods.items()}

    def mean_over_tasks(k: str) -> float:
        return float(np.mean(list(means[k].values()))) if means[k] else float("nan")

    weights = [k for k, m in methods.items() if m["acts"] == "env"]
    latent = [k for k, m in methods.items() if m["acts"] != "env"]
    if not weights or not latent:
        raise SystemExit("each domain needs at least one weight fine-tuning entry and one latent entry.")
    scored = [k for k in weights if math.isfinite(mean_over_tasks(k))]
    if not scored:
        raise SystemExit("no weight fine-tuning entry has an evaluation point within the budget.")
    strongest = max(scored, key=mean_over_tasks)
    base = methods[strongest]["scores"]
    tasks = list(base)
    out: dict[str, Any] = {"strongest_weights": strongest,
                           "weights_mean_score": {k: round(mean_over_tasks(k), 4) for k in weights},
                           "latent": {}}
    for name in latent:
        won = [t for t in tasks if t in means[name] and means[name][t] > means[strongest][t]]
        poi = probability_of_improvement({t: list(v.values()) for t, v in methods[name]["scores"].items()},
                                         {t: list(v.values()) for t, v in base.items()}, reps=reps, seed=0)
        out["latent"][name] = {"tasks_won": won, "tasks_compared": sum(t in methods[name]["scores"] for t in tasks),
                               "p_improvement": poi.to_dict(), "mean_score": round(mean_over_tasks(name), 4)}
    out["tasks"] = tasks
    out["tasks_won_by_some_latent_method"] = len({t for name in latent for t in out["latent"][name]["tasks_won"]})
    return out


def markdown(result: dict[str, Any], methods: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    for domain, res in result["domains"].items():
        tasks = res["tasks"]
        lines += [f"### {domain} (score / zero-shot level at {result['budget']} episodes, mean over seeds)", "",
                  "| method | seeds | " + " | ".join(t.split("-", 1)[-1] for t in tasks) + " | tasks won | P(latent > baseline) |",
                  "|---|---|" + "---|" * len(tasks) + "---|---|"]
        for name, m in methods[domain].items():
            cells = []
            for t in tasks:
                v = m["scores"].get(t)
                cells.append(f"{np.mean(list(v.values())):.2f}" if v else "n/a")
            seeds = sorted({s for v in m["scores"].values() for s in v})
            if name in res["latent"]:
                lat = res["latent"][name]
                p = lat["p_improvement"]
                extra = (f"{len(lat['tasks_won'])} / {lat['tasks_compared']} | "
                         f"{p['value']:.2f} [{p['low']:.2f}, {p['high']:.2f}]")
            else:
                extra = "strongest baseline | " if name == res["strongest_weights"] else "baseline | "
            lines.append(f"| {name} ({m['acts']}) | {','.join(map(str, seeds))} | " + " | ".join(cells)
                         + f" | {extra} |")
        lines += ["", f"Tasks where some latent method beats the strongest baseline: "
                      f"{res['tasks_won_by_some_latent_method']} / {len(tasks)}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entry", action="append", required=True, metavar="DOMAIN/LABEL=FOLDER#ADAPTER")
    parser.add_argument("--budget", type=int, default=20, help="Budget in episodes (default 20).")
    parser.add_argument("--bootstrap-reps", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    methods: dict[str, dict[str, dict[str, Any]]] = {}
    for text in args.entry:
        domain, label, folder, adapter = parse_entry(text)
        acts, scores = run_scores(folder, adapter, args.budget)
        m = methods.setdefault(domain, {}).setdefault(label, {"acts": acts, "scores": {}, "sources": []})
        if m["acts"] != acts:
            raise SystemExit(f"{domain}/{label}: {folder}#{adapter} acts on {acts}, the label's other "
                             f"entries on {m['acts']}; give it its own label.")
        m["sources"].append(f"{folder.as_posix()}#{adapter}")
        for task, per_seed in scores.items():
            clash = set(m["scores"].get(task, {})) & set(per_seed)
            if clash:
                raise SystemExit(f"{domain}/{label}: seed(s) {sorted(clash)} of {task} come from two folders.")
            m["scores"].setdefault(task, {}).update(per_seed)
    result: dict[str, Any] = {"benchmark": "latent_vs_weights", "command": command(), "machine": machine(),
                              "budget": args.budget, "domains": {}}
    for domain, ms in methods.items():
        result["domains"][domain] = compare_domain(ms, args.bootstrap_reps)
    result["summary"] = {
        "tasks": sum(len(r["tasks"]) for r in result["domains"].values()),
        "tasks_won_by_some_latent_method": sum(r["tasks_won_by_some_latent_method"]
                                               for r in result["domains"].values()),
        "tasks_won_per_latent_method": {
            name: sum(len(r["latent"][name]["tasks_won"]) for r in result["domains"].values() if name in r["latent"])
            for name in sorted({k for r in result["domains"].values() for k in r["latent"]})},
    }
    result["methods"] = {d: {k: {"acts": m["acts"], "sources": m["sources"],
                                 "scores": {t: {str(s): (None if not math.isfinite(x) else round(x, 4))
                                                for s, x in v.items()} for t, v in m["scores"].items()}}
                             for k, m in ms.items()} for d, ms in methods.items()}
    result["markdown"] = markdown(result, methods)
    print(result["markdown"])
    write_report(args.out, result)


if __name__ == "__main__":
    main()
