"""Is a zero-shot miss the reward inference's? Other ways to turn labelled states into z.

    python benchmarks/inference_estimators.py --model cheetah \\
        --out benchmarks/results/inference_estimators_cheetah.json

FB's zero-shot latent is ``z_r = proj(E[r(s') B(s')])`` over the model's inference samples.
This benchmark replaces the reward weighting, or refines the result, and plays each latent on
the same episodes as ``benchmarks/zero_shot.py`` (``--episodes`` per task, reset seeds
``--seed + k``), so that every row is paired with the shipped estimator's:

* ``E[r B]`` -- the shipped estimator;
* ``E[(r - mean r) B]`` -- centred rewards (a constant reward changes no optimal policy, but
  it does change ``E[r B]`` by a multiple of ``E[B]``);
* ``E[1{r >= q} B]`` -- the states in the top 10 % / 2 % of reward, as a goal set;
* ``E[rank(r)^4 B]`` -- a smooth, scale-free emphasis on the best states;
* ``E[softmax(r / 0.5 std r) B]`` -- exponential weights;
* ``least squares`` -- ``proj(E[phi r])`` with ``phi = Cov(B)^-1 B``, the regression of r on
  the features that OpTI-BFM fits online;
* ``critic refinement`` -- no new inference but a search over ``--candidates`` latents near
  ``z_r`` (perturbations of 0.1 / 0.2 / 0.4 of its norm) for the one with the highest value
  under the model's own critic, ``mean_s min_k psi_k(s, z)^T E[r B]`` over 1024 inference
  states. No env step is taken to choose it.

A row above the shipped one on real returns means the inference left return on the table; a
critic refinement whose predicted value rises while its return falls means the model's value
of other latents is wrong, so no model-only inference can do better than ``z_r``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _report import command, machine, write_report

from bfm_gym.utils.machine import cpu_kind, cpu_model

os.environ.setdefault("MUJOCO_GL", "egl")

Weighting = Callable[[np.ndarray], np.ndarray]


def _top(q: float) -> Weighting:
    # strictly above the lowest reward, so that a sparse reward's zeros are never "top" states
    return lambda r: ((r >= np.quantile(r, 1 - q)) & (r > r.min())).astype(np.float64)


WEIGHTINGS: dict[str, Weighting] = {
    "E[r B] (shipped)": lambda r: r,
    "centred rewards": lambda r: r - r.mean(),
    "top 10 % of states": _top(0.10),
    "top 2 % of states": _top(0.02),
    "rank(r)^4": lambda r: (r.argsort().argsort() / (len(r) - 1)) ** 4,
    "softmax(r / 0.5 std)": lambda r: np.exp((r - r.max()) / (0.5 * r.std() + 1e-12)),
}
"""Row name -> weights w(r) of the samples in ``proj(E[w(r) B])``."""


def critic_value(bfm: Any, states: np.ndarray, zs: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``mean_s min_k psi_k(s, z)^T w`` for each latent in ``zs``: the model's own estimate of
    the discounted reward ``w`` collected by ``pi(., z)`` from the given states."""
    import torch

    w_t = torch.as_tensor(w, dtype=torch.float32)
    values = []
    for z in zs:
        psi = torch.as_tensor(bfm.psi(states, np.repeat(z[None], len(states), 0)))
        values.append(float((psi @ w_t).min(0).values.mean()))
    return np.asarray(values)


def task_latents(bfm: Any, task: str, candidates: int, seed: int) -> dict[str, dict[str, Any]]:
    """Every estimator's latent for ``task``, with what each knows about it."""
    from bfm_gym.models.inference import labelled_rewards

    samples = bfm.samples
    r = np.asarray(labelled_rewards(bfm, samples, task), dtype=np.float64).reshape(-1)

    def infer(weights: np.ndarray, project: bool = True) -> np.ndarray:
        """The model's own inference ``proj(E[w B])`` with the weights in place of rewards."""
        return np.asarray(bfm.infer_z(samples.next_obs, weights.astype(np.float32), project=project))

    def proj(v: np.ndarray) -> np.ndarray:
        return np.asarray(bfm.project(np.asarray(v, dtype=np.float32).reshape(1, -1)))[0]

    rows = {name: {"z": infer(weight(r))} for name, weight in WEIGHTINGS.items()}
    raw = infer(r, project=False)  # the shipped estimator before projection
    z_r = rows["E[r B] (shipped)"]["z"]
    phi = np.asarray(bfm.phi(samples.next_obs), dtype=np.float64)
    rows["least squares"] = {"z": proj((phi * r[:, None]).mean(0))}
    rng = np.random.default_rng(seed)
    states = np.asarray(samples.next_obs[rng.choice(len(r), min(1024, len(r)), replace=False)],
                        dtype=np.float32)
    per = candidates // 3
    pool = np.concatenate([z_r[None]] + [
        np.asarray(bfm.project((z_r + s * rng.standard_normal((per, len(z_r)))).astype(np.float32)))
        for s in (0.1, 0.2, 0.4)])
    values = critic_value(bfm, states, pool, raw)
    best = int(values.argmax())
    rows["critic refinement"] = {"z": pool[best], "critic_value": round(float(values[best]), 4),
                                 "critic_value_of_z_r": round(float(values[0]), 4)}
    for row in rows.values():
        row["cosine_to_z_r"] = round(float(row["z"] @ z_r / (np.linalg.norm(row["z"]) * np.linalg.norm(z_r))), 4)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Shipped model name or model folder.")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", type=int, default=96,
                        help="Latents searched by the critic refinement (plus z_r itself).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/inference_estimators.json")
    args = parser.parse_args()
    import torch

    import bfm_gym
    from bfm_gym.envs.gym_env import env_info_of, make_task_env
    from bfm_gym.evaluation.report import benchmark_tasks
    from bfm_gym.evaluation.rollout import rollout_returns

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    bfm = bfm_gym.load(args.model)
    domain = bfm.metadata.domain
    tasks = benchmark_tasks(domain)
    per_task: dict[str, dict[str, Any]] = {}
    for task in tasks:
        rows = task_latents(bfm, task, args.candidates, args.seed)
        for row in rows.values():
            z = np.repeat(row.pop("z")[None].astype(np.float32), args.episodes, 0)
            returns = rollout_returns(
                lambda task=task: make_task_env(domain, task, env_info=env_info_of(bfm)),
                lambda obs, z=z: bfm.act(obs, z[: len(obs)]), args.episodes, args.seed)
            row["mean"] = round(float(np.mean(returns)), 1)
            row["std"] = round(float(np.std(returns)), 1)
        per_task[task] = rows
        print(task, {n: r["mean"] for n, r in rows.items()}, flush=True)
    names = list(next(iter(per_task.values())))
    means = {n: round(float(np.mean([per_task[t][n]["mean"] for t in tasks])), 1) for n in names}
    report = {"benchmark": "inference_estimators", "command": command(),
              "machine": machine(cpu=f"{cpu_model()} ({cpu_kind()})", threads=args.threads,
                                 load=os.getloadavg()),
              "model": args.model, "domain": domain, "episodes": args.episodes, "seed": args.seed,
              "candidates": args.candidates, "mean_over_tasks": means, "tasks": per_task,
              "best": max(means, key=means.__getitem__),
              "wall_seconds": round(time.perf_counter() - start, 1)}
    width = max(map(len, names))
    for n in names:
        print(f"{n:{width}s} {means[n]:8.1f}")
    write_report(args.out, report)


if __name__ == "__main__":
    main()
