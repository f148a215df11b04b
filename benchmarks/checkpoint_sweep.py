"""Zero-shot returns of a pretrain run's checkpoints: which one to ship.

    python benchmarks/checkpoint_sweep.py runs/walker-cpu --every 5000 --follow \
        --out benchmarks/results/walker_checkpoints.json

FB's zero-shot returns swing from checkpoint to checkpoint, so the last one is not
necessarily the best. For every checkpoint of ``RUN`` at a multiple of ``--every``
this writes a model folder (``bfm-gym export RUN --step N``, into ``--exports``),
evaluates it on every task of the domain (``--episodes`` per task, deterministic
policy, the same procedure as ``bfm-gym card`` and ``benchmarks/zero_shot.py``) and
records the returns in ``--out`` (JSON, rewritten atomically after each checkpoint) and
a plot next to it. Steps already in ``--out`` are skipped, so a rerun resumes.
``--follow`` keeps polling for new checkpoints while the run trains (the trainer keeps
only its newest two, plus multiples of ``pretrain --keep-every``); give it one thread. It may
start before the run does: it then waits for the run's ``training/run.json``.

``--average K`` evaluates checkpoint averages instead: at each step, the uniform mean of the
weights of the K kept checkpoints up to it (``bfm-gym export --average K``); keep every
checkpoint (``pretrain --keep-every`` equal to ``--checkpoint-every``) to average a window.

A checkpoint picked as the best of many on these episodes is biased upwards; check the
pick on fresh episodes (``--confirm STEP``: 20 episodes per task, seed 1) before
shipping it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from _report import command, finish_plot, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")


def _steps(run: Path, every: int) -> list[int]:
    from bfm_gym.models.fb.trainer import list_checkpoints

    steps = (int(p.name[5:]) for p in list_checkpoints(run / "training" / "checkpoints"))
    return [s for s in steps if s % every == 0]


def evaluate(run: Path, step: int, exports: Path, episodes: int, seed: int, average: int = 1,
             weights: str = "auto") -> dict:
    """Exports checkpoint ``step`` (once; with ``average`` > 1 the mean weights of the
    ``average`` kept checkpoints up to it; ``weights`` as ``bfm-gym export --weights``) and
    evaluates it zero-shot on every task."""
    from bfm_gym.evaluation.report import zero_shot_report
    from bfm_gym.pretraining import export_checkpoint

    suffix = (f"_avg{average}" if average > 1 else "") + (f"_{weights}" if weights != "auto" else "")
    folder = exports / f"step_{step:09d}{suffix}"
    if not (folder / "inference_samples.safetensors").is_file():
        exports.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)  # an export interrupted half-way
        export_checkpoint(run, folder, step=step, average=average, weights=weights)
    report = zero_shot_report(str(folder), episodes=episodes, seed=seed)
    return {"step": step, "average": average, "weights": weights, "model": str(folder),
            "episodes": episodes, "seed": seed,
            "mean": report["mean_over_tasks"],
            "tasks": {t: round(v["mean"], 1) for t, v in report["tasks"].items()}}


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Mean and per-task zero-shot return against training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["step"])
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for task in rows[0]["tasks"]:
        ax.plot(steps, [r["tasks"][task] for r in rows], lw=1, alpha=0.7, label=task)
    ax.plot(steps, [r["mean"] for r in rows], "k-o", ms=3, lw=2, label="mean over tasks")
    finish_plot(fig, ax, path, xlabel="updates", title=title,
                ylabel=f"zero-shot return ({rows[0]['episodes']} episodes/task)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="The --out folder of a bfm-gym pretrain run.")
    parser.add_argument("--every", type=int, default=10_000, help="Evaluate steps at multiples of this.")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exports", type=Path, default=None,
                        help="Where exported model folders go (default: RUN-exports).")
    parser.add_argument("--follow", action="store_true",
                        help="Keep polling for new checkpoints (Ctrl-C to stop).")
    parser.add_argument("--confirm", type=int, default=None, metavar="STEP",
                        help="Re-evaluate one swept step on fresh episodes (20 per task, seed 1).")
    parser.add_argument("--average", type=int, default=1, metavar="K",
                        help="Evaluate the mean weights of the K kept checkpoints up to each step "
                             "(bfm-gym export --average K); steps with fewer before them are skipped.")
    parser.add_argument("--weights", choices=("auto", "online", "ema"), default="auto",
                        help="A run trained with ema_tau > 0: its moving average (auto, ema) or "
                             "the checkpoints' own weights (online).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.every < 1 or args.average < 1:
        parser.error("--every and --average must be positive")
    run_json = args.run / "training" / "run.json"
    if args.follow and args.confirm is None:
        wait_for_run(run_json)
    if not run_json.is_file():
        parser.error(f"{args.run} holds no pretrain run (no training/run.json)")
    import torch

    torch.set_num_threads(args.threads)
    exports = args.exports or args.run.with_name(args.run.name + "-exports")
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    rows: list[dict] = report.get("checkpoints", [])
    confirmed: list[dict] = report.get("confirmed", [])
    if args.confirm is not None:
        if args.confirm not in {r["step"] for r in rows}:
            parser.error(f"step {args.confirm} is not in {args.out}; sweep it first")
        confirmed = [c for c in confirmed if c["step"] != args.confirm]
        confirmed.append({**evaluate(args.run, args.confirm, exports, 20, 1, args.average,
                                   args.weights),
                          "command": command()})
        print(confirmed[-1], flush=True)
        _write(args, rows, confirmed, report)
    while True:
        kept = _steps(args.run, 1)
        todo = [s for s in _steps(args.run, args.every) if s not in {r["step"] for r in rows}
                and len([k for k in kept if k <= s]) >= args.average]
        for step in todo:
            row = evaluate(args.run, step, exports, args.episodes, args.seed, args.average,
                           args.weights)
            rows.append(row)
            rows.sort(key=lambda r: r["step"])
            print(row, flush=True)
            _write(args, rows, confirmed, report)
        if args.confirm is not None or not args.follow:
            break
        time.sleep(60)


def wait_for_run(run_json: Path, poll_s: float = 10.0) -> None:
    """Blocks until ``run_json`` exists: ``--follow`` started next to the pretrain command
    waits for it to write its run record instead of failing."""
    if not run_json.is_file():
        print(f"waiting for {run_json} (the pretrain run has not started yet)", flush=True)
    while not run_json.is_file():
        time.sleep(poll_s)


def _write(args: argparse.Namespace, rows: list[dict], confirmed: list[dict], old: dict) -> None:
    best = max(rows, key=lambda r: r["mean"]) if rows else None
    # fields added to an earlier result by hand (training command, data) are kept
    report = {**old, "benchmark": "checkpoint_sweep", "command": old.get("command") or command(),
              "machine": machine(torch_threads=args.threads), "run": str(args.run),
              "every": args.every, "average": args.average, "weights": args.weights,
              "checkpoints": rows,
              "best_step": best["step"] if best else None, "confirmed": confirmed}
    write_report(args.out, report)
    if rows:
        plot(rows, args.out.with_suffix(".png"), f"{args.run}: zero-shot return per checkpoint")


if __name__ == "__main__":
    main()
