"""Do the policy's fast paths play as well as the model itself? Returns per path, same episodes.

The latent wrapper evaluates ``pi(s, z)`` through :class:`~bfm_gym.models.fb.fast_policy.PolicyRunner`:
the fused numpy forward (actors up to 2^21 weights since stop 43), or the fused torch one.
Both agree with ``model.actor`` only up to float32 rounding (~1e-5 on the 512-wide walker),
and a walker's trajectory is chaotic, so a rounding difference changes single episodes. This
script asks whether it changes the *distribution* of returns: for each task it plays the
zero-shot z from the same ``--episodes`` start states (reset seeds ``--seed + k``) with

* ``numpy``: ``PolicyRunner(model, 1, backend="numpy")``,
* ``torch-fused``: ``PolicyRunner(model, 1, backend="torch-fused")``,
* ``handle``: ``bfm.act(obs, z)`` (the model's own actor, what zero-shot evaluation uses),

and reports each path's mean, standard deviation and Welch's t statistic against ``handle``.

    python benchmarks/policy_path_returns.py --model walker --tasks walk,run --episodes 30
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import warnings

from _report import command, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

import bfm_gym
from bfm_gym.envs import make_env
from bfm_gym.evaluation.zero_shot import task_z
from bfm_gym.models.fb.fast_policy import PolicyRunner

PATHS = ("numpy", "torch-fused", "handle")


def play(bfm: object, domain: str, task: str, z: np.ndarray, path: str, episodes: int,
         seed: int) -> list[float]:
    """Returns of ``episodes`` episodes of ``pi(., z)`` through ``path``."""
    model = bfm._model  # type: ignore[attr-defined]
    runner = None
    if path != "handle":
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a runner that falls back to model.actor is a bug here
            runner = PolicyRunner(model, 1, backend=path)  # type: ignore[arg-type]
        if runner.path != path:
            raise RuntimeError(f"PolicyRunner gave the {runner.path!r} path, not {path!r}")
        runner.z[0] = z
    out = []
    for k in range(episodes):
        env = make_env(domain, task)
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            if runner is None:
                action = bfm.act(obs, z)  # type: ignore[attr-defined]
            else:
                runner.obs[0] = obs
                action = runner()[0].copy()
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        env.close()
        out.append(total)
    return out


def welch_t(a: list[float], b: list[float]) -> float:
    """Welch's t statistic of mean(a) - mean(b)."""
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return (statistics.mean(a) - statistics.mean(b)) / se if se > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="walker")
    parser.add_argument("--tasks", default="walk,run")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results/policy_path_returns.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bfm = bfm_gym.load(args.model)
    domain = bfm.metadata.domain
    n_weights = sum(p.numel() for p in bfm._model.actor.parameters())  # type: ignore[attr-defined]
    report: dict[str, object] = {
        "benchmark": "policy_path_returns", "command": command(),
        "machine": machine(torch=torch.__version__, torch_threads=1),
        "model": args.model, "actor_weights": n_weights, "episodes": args.episodes,
        "reset_seeds": [args.seed, args.seed + args.episodes - 1], "tasks": {},
    }
    for task in args.tasks.split(","):
        z = np.asarray(task_z(bfm, bfm.samples, task), np.float32)
        rows: dict[str, dict[str, object]] = {}
        returns = {}
        for path in PATHS:
            start = time.perf_counter()
            returns[path] = play(bfm, domain, task, z, path, args.episodes, args.seed)
            rows[path] = {
                "mean": round(statistics.mean(returns[path]), 2),
                "std": round(statistics.stdev(returns[path]), 2),
                "min": round(min(returns[path]), 2),
                "wall_s": round(time.perf_counter() - start, 1),
                "returns": [round(r, 2) for r in returns[path]],
            }
        for path in PATHS[:-1]:
            rows[path]["welch_t_vs_handle"] = round(welch_t(returns[path], returns["handle"]), 2)
        report["tasks"][task] = rows  # type: ignore[index]
        print(task, {p: (r["mean"], r["std"]) for p, r in rows.items()}, flush=True)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
