"""FB training next to another busy process: fixed thread counts against ``threads="auto"``.

    python benchmarks/thread_governor.py --out benchmarks/results/thread_governor.json

Starts a busy-loop process (another job on the machine), then trains a walker ``cpu``-size
FB model on random transitions for ``--updates`` updates three ways, one after the other in
fresh trainers: 2 threads fixed, 1 thread fixed, and two threads governed by
:class:`~bfm_gym.models.threads.ThreadGovernor` (what ``threads="auto"`` does after it starts
with the cores free at the start; here it is started at 2 to show it recovering, with a short
``--period`` so that the run is short). Reports updates/s per log window and overall, and the
thread changes the governor made. Needs at least 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import time

import numpy as np
import torch
from _report import command, write_report

from bfm_gym.utils.machine import machine_summary


def _busy(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        pass


def train(threads: int, governed: bool, updates: int, period: float) -> dict:
    from bfm_gym.models.fb import FBConfig, FBTrainer
    from bfm_gym.models.fb.replay import OfflineReplay
    from bfm_gym.models.runtime import usable_cores
    from bfm_gym.models.threads import ThreadGovernor

    trainer = FBTrainer(FBConfig.preset("walker", "cpu"), 24, 6, device="cpu", threads=threads)
    if governed:
        trainer._governor = ThreadGovernor(usable_cores(), threads=threads, period_s=period,
                                           hold_periods=3)
    rng = np.random.default_rng(0)
    n = 20_000
    obs = rng.normal(size=(n, 24)).astype("float32")
    replay = OfflineReplay(obs, rng.uniform(-1, 1, (n, 6)).astype("float32"), obs + 0.01)
    start = time.perf_counter()
    history = trainer.train(replay, updates, log_every=100, progress=False)
    wall = time.perf_counter() - start
    return {"threads_at_start": threads, "governed": governed, "updates": updates,
            "updates_per_s": round(updates / wall, 2),
            "window_updates_per_s": [round(h["updates_per_s"], 1) for h in history],
            "threads_at_end": torch.get_num_threads(),
            "thread_changes": trainer._governor.changes if governed else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--period", type=float, default=5.0,
                        help="The governor's measurement period in seconds (default 30 in training).")
    parser.add_argument("--out", default="benchmarks/results/thread_governor.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("thread_governor.py needs at least 2 cores")
    report = {"benchmark": "thread_governor", "command": command(),
              "machine": machine_summary(), "load_average_at_start": os.getloadavg()}
    busy = mp.get_context("spawn").Process(target=_busy, args=(3600.0,), daemon=True)
    busy.start()
    try:
        time.sleep(1.0)
        runs = [train(2, False, args.updates, args.period), train(1, False, args.updates, args.period),
                train(2, True, args.updates, args.period)]
    finally:
        busy.terminate()
    report["runs"] = runs
    report["governed_vs_two_fixed"] = round(runs[2]["updates_per_s"] / runs[0]["updates_per_s"], 2)
    report["governed_vs_one_fixed"] = round(runs[2]["updates_per_s"] / runs[1]["updates_per_s"], 2)
    for r in runs:
        print(f"threads {r['threads_at_start']} {'governed' if r['governed'] else 'fixed'}: "
              f"{r['updates_per_s']} updates/s (changes {r['thread_changes']})")
    write_report(args.out, report)


if __name__ == "__main__":
    main()
