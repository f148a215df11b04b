"""HILP updates in fp32 and under bf16 autocast: speed, and agreement on a real run.

Two measurements, both side by side in one process so that the ratio holds on a busy machine:

* **speed** (always): ``HILPTrainer.update`` of the domain's preset on random tensors of its
  dimensions, ``amp="off"`` against ``amp="bf16"`` (both with fused Adam) and the plain
  fp32 foreach-Adam path, round robin over ``--repeats`` chunks of ``--updates`` updates;
  median rates in wall time and in this thread's CPU time. bf16 only pays on CPUs with native
  bf16 (``cpu_kind`` in the JSON); elsewhere it is emulated and much slower.
* **agreement** (``--checkpoint`` and ``--dataset``): two trainers restored from the same
  training checkpoint take ``--agree-updates`` updates on the same batches and noise, one in
  each precision; the JSON holds both loss curves (means over blocks of updates) and the
  relative gap of their means.

Usage::

    python benchmarks/hilp_precision.py --domain walker
    python benchmarks/hilp_precision.py --checkpoint runs/walker-hilp/training/checkpoints/step_000015000 \\
        --dataset data/walker-rnd --agree-updates 1500 --out benchmarks/results/hilp_precision_walker.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from _cpu import machine_info
from _report import command, write_report

import numpy as np
import torch

from bfm_gym.models.hilp import GoalReplay, HILPConfig, HILPTrainer

DIMS = {"walker": (24, 6), "cheetah": (17, 6), "quadruped": (78, 12), "point_mass_maze": (4, 2)}
VARIANTS = {"fp32_foreach": {"amp": "off", "fused_adam": False},
            "fp32": {"amp": "off"}, "bf16": {"amp": "bf16"}}
METRICS = ("sf_loss", "phi_loss", "actor_loss", "v_mean")


def speed(domain: str, size: str, updates: int, repeats: int) -> dict[str, Any]:
    """Median updates/s (wall and thread CPU time) per variant, measured round robin."""
    obs_dim, action_dim = DIMS[domain]
    rng = np.random.default_rng(0)
    n = 20_000
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    replay = GoalReplay(obs, rng.uniform(-1, 1, (n, action_dim)).astype(np.float32), obs + 0.01,
                        episode=np.arange(n) // 1000)
    base = HILPConfig.preset(domain, size)
    trainers = {k: HILPTrainer(base.replace(**v), obs_dim, action_dim, device="cpu", threads=1, seed=0)
                for k, v in VARIANTS.items()}
    batches = [trainers["fp32"].sample(replay) for _ in range(updates)]
    for t in trainers.values():  # warm-up
        for b in batches[:3]:
            t.update(b)
    wall: dict[str, list[float]] = {k: [] for k in trainers}
    cpu: dict[str, list[float]] = {k: [] for k in trainers}
    for _ in range(repeats):
        for k, t in trainers.items():
            w, c = time.perf_counter(), time.thread_time()
            for b in batches:
                t.update(b)
            wall[k].append(updates / (time.perf_counter() - w))
            cpu[k].append(updates / (time.thread_time() - c))
    rows = {k: {"updates_per_s": statistics.median(wall[k]), "updates_per_cpu_s": statistics.median(cpu[k]),
                "config": VARIANTS[k]} for k in trainers}
    ref = rows["fp32_foreach"]["updates_per_cpu_s"]
    for row in rows.values():
        row["cpu_speedup_vs_fp32_foreach"] = row["updates_per_cpu_s"] / ref
    return {"domain": domain, "size": size, "updates": updates, "repeats": repeats, "variants": rows}


def agreement(checkpoint: Path, dataset: Path, updates: int) -> dict[str, Any]:
    """Both precisions from one checkpoint on the same batches and noise: loss series and gaps."""
    from bfm_gym.pretraining import _load_datasets

    t = _load_datasets([dataset])
    replay = GoalReplay(t.obs, t.action, t.next_obs, t.terminated, t.episode)
    series: dict[str, dict[str, list[float]]] = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        trainer = HILPTrainer.from_checkpoint(checkpoint, device="cpu", threads=1)
        trainer.amp_dtype = dtype  # the precision alone differs; the generators are restored
        series[name] = {k: [] for k in METRICS}
        for _ in range(updates):
            metrics = trainer.update(trainer.sample(replay))
            for k in METRICS:
                series[name][k].append(float(metrics[k]))
    gaps = {k: abs(np.mean(series["bf16"][k]) - np.mean(series["fp32"][k])) / (abs(np.mean(series["fp32"][k])) + 1e-8)
            for k in METRICS}
    block = max(1, updates // 15)  # the JSON keeps means over blocks of updates, not every value
    blocks = {name: {k: [float(np.mean(v[i:i + block])) for i in range(0, updates, block)] for k, v in s.items()}
              for name, s in series.items()}
    return {"checkpoint": str(checkpoint), "dataset": str(dataset), "updates": updates,
            "relative_gap_of_means": gaps, "block_updates": block, "block_means": blocks}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domain", default="walker", choices=sorted(DIMS))
    p.add_argument("--size", default="cpu", choices=("cpu", "paper", "tiny"))
    p.add_argument("--updates", type=int, default=8, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--checkpoint", type=Path, help="a HILP training checkpoint (step_* folder)")
    p.add_argument("--dataset", type=Path, help="the dataset that checkpoint trains on")
    p.add_argument("--agree-updates", type=int, default=1500)
    p.add_argument("--out", default="benchmarks/results/hilp_precision.json")
    args = p.parse_args(argv)
    if (args.checkpoint is None) != (args.dataset is None):
        p.error("--checkpoint and --dataset go together")
    torch.set_num_threads(1)
    report: dict[str, Any] = {"benchmark": "hilp_precision", "command": command(),
                              "machine": machine_info(torch_threads=1)}
    report["speed"] = speed(args.domain, args.size, args.updates, args.repeats)
    for k, row in report["speed"]["variants"].items():
        print(f"{k:13s} {row['updates_per_s']:6.1f} updates/s  {row['updates_per_cpu_s']:6.1f} per CPU-s "
              f"(x{row['cpu_speedup_vs_fp32_foreach']:.2f})")
    if args.checkpoint is not None:
        report["agreement"] = agreement(args.checkpoint, args.dataset, args.agree_updates)
        print("relative gap of the means, bf16 vs fp32:",
              {k: f"{v:.2e}" for k, v in report["agreement"]["relative_gap_of_means"].items()})
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
