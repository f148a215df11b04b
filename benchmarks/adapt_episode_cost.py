"""CPU seconds per adaptation episode, per adapter: what a `bfm-gym compare` grid costs.

    OMP_NUM_THREADS=1 BFM_GYM_LOAD_PLUGINS=sb3,cem python benchmarks/adapt_episode_cost.py \
        --model walker --task walk --out benchmarks/results/adapt_episode_cost_walker.json

For each adapter: one ``adapt`` run of ``--episodes`` training episodes (no evaluation
points), in this process with one torch thread, timed with ``time.process_time`` (CPU
time, so a loaded machine inflates it less than wall time) minus the CPU time of the same
run with one 10-step episode (model load, adapter construction, envs). One evaluation episode (z held,
deterministic policy: what every evaluation start state and the zero-shot level cost)
is timed the same way. The JSON records the CPU kind, thread count and load, and a
per-adapter estimate of a compare cell (``--cell-episodes`` training episodes plus
``--cell-eval-episodes`` evaluation episodes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cpu import machine_info
from _report import command, write_report

DEFAULT_ADAPTERS = "zero-shot,opti,rela,lola,cem,sb3-td3-finetune,sb3-sac-latent"


def _cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(CPU seconds of ``fn()``, its result)."""
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="walker")
    ap.add_argument("--task", default="walk")
    ap.add_argument("--adapters", default=DEFAULT_ADAPTERS)
    ap.add_argument("--episodes", type=int, default=1, help="Training episodes timed per adapter.")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="ADAPTER.KEY=VALUE",
                    help="Adapter config field (as bfm-gym compare --set), e.g. rela.update_every=8.")
    ap.add_argument("--cell-episodes", type=int, default=20)
    ap.add_argument("--cell-eval-episodes", type=int, default=25,
                    help="Evaluation episodes per cell (points x start states + the zero-shot level).")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from bfm_gym.experiments.adapt import adapt
    from bfm_gym.experiments.compare import parse_overrides
    from bfm_gym.plugins import load_plugins

    overrides = parse_overrides(args.overrides)
    registry = load_plugins().adapters
    adapters = [a for a in args.adapters.split(",") if a]
    missing = [a for a in adapters if a not in registry]
    if missing:
        raise SystemExit(f"adapters not registered: {', '.join(missing)} (plugins: set BFM_GYM_LOAD_PLUGINS=sb3,cem)")
    machine = machine_info(threads=torch.get_num_threads())
    results: dict[str, dict] = {}
    for name in adapters:
        cfg = overrides.get(name)

        def run(n: int, name: str = name, cfg: dict | None = cfg) -> dict:
            # n == 0: one 10-step episode, i.e. the setup (model load, adapter, envs) alone
            return adapt(args.model, args.task, name, episodes=max(n, 1), seed=0, config=cfg, progress=False,
                         eval_episodes=0, zero_shot_episodes=0, max_episode_steps=None if n else 10)

        base, _ = _cpu(lambda run=run: run(0))
        total, res = _cpu(lambda run=run: run(args.episodes))
        rec = res.records[-1]
        per = max(total - base, 0.0) / args.episodes
        results[name] = {"cpu_s_per_episode": round(per, 2), "env_steps_per_episode": rec["env_steps"] / args.episodes,
                         "sim_steps_per_episode": rec.get("sim_steps", 0) / args.episodes,
                         "setup_cpu_s": round(base, 2), "config": dict(cfg or {})}
        print(name, results[name], flush=True)
    base, _ = _cpu(lambda: adapt(args.model, args.task, "zero-shot", episodes=1, seed=0, progress=False,
                              eval_episodes=0, zero_shot_episodes=0))
    with_eval, _ = _cpu(lambda: adapt(args.model, args.task, "zero-shot", episodes=1, seed=0, progress=False,
                                   eval_episodes=5, eval_every=1, zero_shot_episodes=5))
    eval_s = max(with_eval - base, 0.0) / 10
    for r in results.values():
        # budget in env steps: an adapter with lookahead plays fewer real episodes per budget episode
        per_budget_episode = r["cpu_s_per_episode"] * 1000 / max(r["env_steps_per_episode"], 1)
        r["cpu_s_per_cell"] = round(r["setup_cpu_s"] + args.cell_episodes * per_budget_episode
                                    + args.cell_eval_episodes * eval_s, 1)
    report = {"command": command(), "model": args.model, "task": args.task, "episodes_timed": args.episodes,
              "eval_episode_cpu_s": round(eval_s, 3), "cell": {"episodes": args.cell_episodes,
                                                                "eval_episodes": args.cell_eval_episodes},
              "adapters": results, "machine": {**machine, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}}
    print(f"evaluation episode: {eval_s:.3f} CPU s")
    print(write_report(args.out, report))


if __name__ == "__main__":
    main()
