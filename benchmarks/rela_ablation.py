"""ReLA's settings on one task of a shipped model: which one keeps the latent from drifting.

    python benchmarks/rela_ablation.py --model point_mass_maze --task reach_bottom_left \
        --episodes 20 --seeds 2 --out benchmarks/results/rela_ablation_maze.json

Runs ``bfm-gym adapt`` with ReLA (``update_every=8``, as in the adaptation benchmark) under
the default settings and one change at a time: a 10x smaller latent learning rate, a 5x
longer warm-up, the residual critic fed z. Reports the mean return of the first 5 and of
the last 10 episodes per seed next to the run's zero-shot level.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _report import command, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

VARIANTS = {"default": {}, "lr_z=1e-5": {"lr_z": 1e-5}, "warmup_steps=5000": {"warmup_steps": 5000},
            "q_uses_z": {"q_uses_z": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="point_mass_maze")
    parser.add_argument("--task", default="reach_bottom_left")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--runs", default="runs/rela-ablation")
    parser.add_argument("--out", default="benchmarks/results/rela_ablation_maze.json")
    args = parser.parse_args()
    import torch

    from bfm_gym.experiments import adapt

    torch.set_num_threads(1)
    rows = []
    for name, change in VARIANTS.items():
        config = {"update_every": 8, **change}
        for seed in range(args.seeds):
            res = adapt(args.model, args.task, "rela", episodes=args.episodes, seed=seed,
                        config=config, out=Path(args.runs) / f"{name}-s{seed}", progress=False)
            returns = [r["return"] for r in res.records]
            row = {"variant": name, "config": config, "seed": seed,
                   "zero_shot": res.summary["zero_shot"],
                   "first5_mean": round(float(np.mean(returns[:5])), 1),
                   "last10_mean": round(float(np.mean(returns[-10:])), 1)}
            rows.append(row)
            print(row, flush=True)
    report = {"benchmark": "rela_ablation",
              "command": command(),
              "machine": machine(torch_threads=1),
              "model": args.model, "task": args.task, "episodes": args.episodes, "rows": rows}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
