"""Which start makes SB3 weight fine-tuning of the BFM actor a fair baseline?

    OMP_NUM_THREADS=1 python benchmarks/sb3_finetune_init.py --model walker --tasks stand \
        --episodes 4 --out benchmarks/results/sb3_finetune_init_walker_stand.json

Every variant starts from the BFM actor at the zero-shot latent ``z_r``; they differ in
the critic (``fresh``: SB3's random MLP; ``bfm``: a trainable copy of F with
``Q = F(s, a, z_r)^T E[r B]``; ``distill``: SB3's MLP regressed onto that Q before
training) and in ``warmup_steps`` (the first steps train the critic only, actor frozen).
Each run is one ``bfm-gym adapt --adapter sb3-td3-finetune`` command (one torch thread),
listed with its result, with an evaluation (deterministic policy) after every training
episode. Invocations over different tasks or variants can run side by side and be
merged afterwards with ``--merge a.json b.json --out all.json``.

Reported per run: the zero-shot return (``pi(s, z_r)`` from the evaluation's start states),
the training and evaluation returns per episode (each evaluation: the mean over
``--eval-episodes`` fixed start states, the same as the zero-shot level's), and the "unlearning" drop of the
evaluation curve: its depth ``1 - min(eval) / zero-shot`` and its recovery, the number
of episodes from the minimum until an evaluation reaches ``--recovered`` of zero-shot
(None: not within the budget). Per variant: the mean over tasks and seeds of the last
evaluation / zero-shot and of the drop depth.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _report import command, machine, write_report

VARIANTS: dict[str, dict[str, str]] = {
    "fresh": {"critic": "fresh", "warmup_steps": "0"},
    "fresh+warmup": {"critic": "fresh", "warmup_steps": "1000"},
    "distill": {"critic": "distill", "warmup_steps": "0"},
    "distill+warmup": {"critic": "distill", "warmup_steps": "1000"},
    "bfm": {"critic": "bfm", "warmup_steps": "0"},
    "bfm+warmup": {"critic": "bfm", "warmup_steps": "1000"},
}


def drop(evals: list[float], zero_shot: float, recovered: float) -> dict[str, float | int | None]:
    """Depth of the evaluation curve's lowest point below zero-shot, and episodes to recover."""
    low = min(range(len(evals)), key=lambda i: evals[i])
    back = next((i - low for i in range(low, len(evals)) if evals[i] >= recovered * zero_shot), None)
    return {"depth": round(max(0.0, 1.0 - evals[low] / zero_shot), 4), "min_episode": low + 1,
            "recovery_episodes": back}


def run(args: argparse.Namespace, task: str, seed: int, name: str, sets: dict[str, str]) -> dict:
    out = Path(args.runs) / f"{task}-{name}-s{seed}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resume
    cmd = [os.path.join(os.path.dirname(sys.executable), "bfm-gym"), "adapt", "--model", args.model,
           "--task", task, "--adapter", args.adapter, "--episodes", str(args.episodes),
           "--seed", str(seed), "--eval-every", "1", "--eval-episodes", str(args.eval_episodes),
           "--zero-shot-episodes", str(args.eval_episodes), "--out", str(out), "--no-progress"]
    for key, value in {**sets, **dict(s.split("=", 1) for s in args.set)}.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "BFM_GYM_LOAD_PLUGINS": "sb3", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    zero_shot = float(json.loads((out / "summary.json").read_text())["zero_shot"])
    evals = [float(r["eval_return"]) for r in records]
    train = [float(r["return"]) for r in records]
    return {"task": task, "seed": seed, "variant": name,
            "command": "BFM_GYM_LOAD_PLUGINS=sb3 OMP_NUM_THREADS=1 bfm-gym " + " ".join(cmd[1:]),
            "zero_shot": zero_shot, "train_returns": train, "eval_returns": evals,
            "last_eval_over_zero_shot": round(evals[-1] / zero_shot, 4),
            "mean_eval_over_zero_shot": round(sum(evals) / len(evals) / zero_shot, 4),
            "drop": drop(evals, zero_shot, args.recovered),
            "train_drop": drop(train, zero_shot, args.recovered), "wall_s": round(wall, 1)}


def summarize(runs: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["variant"] for r in runs):
        rows = [r for r in runs if r["variant"] == name]
        mean = lambda xs: round(sum(xs) / len(xs), 4)  # noqa: E731
        out[name] = {"runs": len(rows),
                     "last_eval_over_zero_shot": mean([r["last_eval_over_zero_shot"] for r in rows]),
                     "mean_eval_over_zero_shot": mean([r["mean_eval_over_zero_shot"] for r in rows]),
                     "drop_depth": mean([r["drop"]["depth"] for r in rows]),
                     "recovered_runs": sum(r["drop"]["recovery_episodes"] is not None for r in rows)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="walker")
    p.add_argument("--tasks", default="stand,walk")
    p.add_argument("--adapter", default="sb3-td3-finetune")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"Comma list of {list(VARIANTS)}.")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--eval-episodes", type=int, default=2,
                   help="Fixed start states per evaluation point (and for the zero-shot level).")
    p.add_argument("--recovered", type=float, default=0.9, help="Fraction of zero-shot that counts as recovered.")
    p.add_argument("--set", action="append", default=[], help="Extra KEY=VALUE for every run.")
    p.add_argument("--runs", default="runs/sb3-finetune-init", help="Folder of the adapt runs.")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="Instead of running: merge these result files (runs in parallel) into --out.")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        runs = [r for part in parts for r in part["runs"]]
        write_report(args.out, {"command": command(), "parts": [part["command"] for part in parts],
                                "machine": parts[0]["machine"], "adapter": parts[0]["adapter"],
                                "episodes": parts[0]["episodes"],
                                "variants": {k: v for part in parts for k, v in part["variants"].items()},
                                "summary": summarize(runs), "runs": runs})
        return
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    runs: list[dict] = []
    for seed in range(args.seeds):
        for task in args.tasks.split(","):
            for name in args.variants.split(","):
                runs.append(run(args, task, seed, name, VARIANTS[name]))
                r = runs[-1]
                print(f"{task} s{seed} {name:15s} zero-shot {r['zero_shot']:.0f} eval {r['eval_returns']} "
                      f"drop {r['drop']} {r['wall_s']} s", flush=True)
                write_report(args.out, {"command": command(), "machine": machine(torch_threads=1),
                                        "adapter": args.adapter, "episodes": args.episodes,
                                        "variants": {k: VARIANTS[k] for k in args.variants.split(",")},
                                        "summary": summarize(runs), "runs": runs})


if __name__ == "__main__":
    main()
