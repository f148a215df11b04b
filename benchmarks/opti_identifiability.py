"""How well does a least-squares fit on phi identify the task, from which states?

    python benchmarks/opti_identifiability.py --model walker --seeds 2 \
        --out benchmarks/results/opti_identifiability_walker.json

OpTI-BFM (docs/algorithms.md#opti-bfm) regresses online rewards on the BFM's features,
``r(s') ~ phi(s')^T w``, and acts with ``z = proj(w_hat)``. Its estimate can only be
as good as the states it has labels for. This benchmark separates that question from
exploration: it fits the same ridge estimate (``V_0 = lam I``, no forgetting) on a
fixed budget of labelled transitions drawn from three sources and scores the latent
each fit gives (deterministic policy, ``--eval-episodes`` episodes):

- ``dataset``: next-states of the shipped inference samples (the pre-training
  distribution), as many as the budget; the zero-shot oracle uses 50k-style samples
  of that same distribution.
- ``random-z``: ``--episodes`` episodes of the BFM acting with latents drawn
  uniformly on the sphere, each held for ``--hold`` steps (pure exploration, no
  reward used to act).
- ``oracle-policy``: ``--episodes`` episodes of the zero-shot policy itself (the data
  a greedy learner sees once it has found the task).

Reported per task and source: the return of ``proj(w_hat)`` as a fraction of the
zero-shot return on the same evaluation seeds, and the cosine between ``w_hat`` and
the zero-shot latent. The linear model's R^2 on the dataset distribution is reported
once per task.
"""

from __future__ import annotations

import argparse
import os
import time

from _report import command, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

SOURCES = ("dataset", "random-z", "oracle-policy")


def collect(bfm, domain: str, latent, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs ``episodes`` episodes acting with ``latent(episode, step)``; returns next-obs
    and simulator states (for relabelling every task from one rollout)."""
    from bfm_gym.envs.dmc_env import DMCEnv

    env = DMCEnv(domain, None)
    obs_rows, states = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed * 1000 + ep)
        done, step = False, 0
        while not done:
            obs, _, terminated, truncated, _ = env.step(bfm.act(obs, latent(ep, step)))
            obs_rows.append(obs)
            states.append(env.get_state())
            done, step = terminated or truncated, step + 1
    env.close()
    return np.asarray(obs_rows, dtype=np.float32), np.asarray(states)


def ridge(phi: np.ndarray, reward: np.ndarray, lam: float) -> np.ndarray:
    """``(Phi^T Phi + lam I)^{-1} Phi^T r`` in float64."""
    p = phi.astype(np.float64)
    return np.linalg.solve(p.T @ p + lam * np.eye(p.shape[1]), p.T @ reward.astype(np.float64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="walker")
    parser.add_argument("--tasks", default=None, help="Comma list (default: the domain's tasks).")
    parser.add_argument("--episodes", type=int, default=10, help="Episodes of labelled data per source.")
    parser.add_argument("--hold", type=int, default=100, help="Steps each random latent is held.")
    parser.add_argument("--lam", type=float, default=1.0, help="Ridge prior precision (OpTI's lambda).")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/opti_identifiability.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import bfm_gym
    from bfm_gym.envs.dmc_env import DMCEnv
    from bfm_gym.envs.relabel import Relabeler
    from bfm_gym.envs.tasks import list_tasks
    from bfm_gym.evaluation.rollout import rollout_returns
    from bfm_gym.evaluation.zero_shot import InferenceSet, task_z
    from bfm_gym.pretrained import resolve

    bfm = bfm_gym.load(args.model)
    domain = bfm.metadata.domain
    tasks = args.tasks.split(",") if args.tasks else list_tasks(domain)
    samples = InferenceSet.load(resolve(args.model))
    relabel = Relabeler(domain)
    start = time.perf_counter()

    def score(task: str, z: np.ndarray, seed: int) -> float:
        def policy(obs: np.ndarray) -> np.ndarray:
            return bfm.act(obs, z)

        return float(rollout_returns(lambda: DMCEnv(domain, task), policy, args.eval_episodes,
                                     seed=10_000 + 100 * seed).mean())

    phi_all = np.asarray(bfm.phi(samples.next_obs))
    oracle = {t: task_z(bfm, samples, t) for t in tasks}
    r2 = {}
    for t in tasks:
        r = samples.rewards(t)
        w = ridge(phi_all, r, 1e-6)
        r2[t] = round(float(1 - np.mean((r - phi_all @ w) ** 2) / r.var()), 4)
    rows = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        random_z = bfm.sample_z(args.episodes * 1000 // args.hold + 1, seed=seed)
        data = {"random-z": collect(bfm, domain, lambda ep, k, zs=random_z: zs[(ep * 1000 + k) // args.hold],
                                    args.episodes, seed)}
        budget = len(data["random-z"][0])
        idx = rng.choice(len(samples.next_obs), size=min(budget, len(samples.next_obs)), replace=False)
        data["dataset"] = (samples.next_obs[idx], samples.next_state[idx])
        for t in tasks:
            zero_shot = score(t, oracle[t], seed)
            sources = dict(data)
            sources["oracle-policy"] = collect(bfm, domain, lambda ep, k, t=t: oracle[t], args.episodes, seed)
            for name in SOURCES:
                obs, states = sources[name]
                w = ridge(np.asarray(bfm.phi(obs)), relabel.rewards(states, t), args.lam)
                z = np.asarray(bfm.project(w.astype(np.float32)), dtype=np.float32)
                ret = score(t, z, seed)
                cos = float(w @ oracle[t] / (np.linalg.norm(w) * np.linalg.norm(oracle[t]) + 1e-12))
                rows.append({"task": t, "seed": seed, "source": name, "labels": len(obs),
                             "return": round(ret, 2), "zero_shot_return": round(zero_shot, 2),
                             "fraction_of_zero_shot": round(ret / max(zero_shot, 1e-9), 4),
                             "cosine_to_zero_shot_z": round(cos, 4), "w_norm": round(float(np.linalg.norm(w)), 5)})
                print(rows[-1], flush=True)
    summary = {}
    for name in SOURCES:
        per_task = {t: round(float(np.mean([r["fraction_of_zero_shot"] for r in rows
                                            if r["source"] == name and r["task"] == t])), 4) for t in tasks}
        cos = [r["cosine_to_zero_shot_z"] for r in rows if r["source"] == name]
        summary[name] = {"fraction_of_zero_shot": per_task,
                         "median_fraction": round(float(np.median(list(per_task.values()))), 4),
                         "mean_cosine": round(float(np.mean(cos)), 4)}
        print(name, summary[name])
    write_report(args.out, {
        "benchmark": "opti_identifiability", "command": command(),
        "machine": machine(torch_threads=args.threads), "model": args.model,
        "episodes": args.episodes, "hold": args.hold, "lam": args.lam, "seeds": args.seeds,
        "eval_episodes": args.eval_episodes, "linear_r2_on_dataset": r2, "summary": summary,
        "rows": rows, "seconds": round(time.perf_counter() - start, 1)})


if __name__ == "__main__":
    main()
