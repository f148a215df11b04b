"""Does a model move, or does it only stand? Zero-shot returns next to what the body does,
how alike the tasks' inferred latents are (cosines: one latent, one policy), and whether the
policy still varies its actions (``action_spread``: the per-joint standard deviation over an
episode, mean over joints; near 0 when the actor has collapsed onto one action vector).

Locomotion tasks of the DMC suite pay part of their reward for standing upright at zero
speed (quadruped walk and run: about half), so a return alone does not tell a gait from a
pose. For each task this rolls out the model's zero-shot policy and records, after the first
``--settle`` steps, the torso's mean forward speed and uprightness, and rolls out uniform random
actions over ``--random-episodes`` seeds for the same task (their returns depend on how each
episode starts: quadruped starts in a random orientation).

    python benchmarks/gait_check.py --model quadruped --tasks stand,walk,run,jump \
        --out benchmarks/results/gait_check_quadruped.json
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from _report import command, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

BODY: dict[str, dict[str, Callable[[Any], float]]] = {
    "quadruped": {"speed": lambda ph: float(ph.torso_velocity()[0]),
                  "upright": lambda ph: float(ph.torso_upright())},
    "walker": {"speed": lambda ph: float(ph.horizontal_velocity()),
               "upright": lambda ph: float(ph.torso_upright())},
    "cheetah": {"speed": lambda ph: float(ph.speed())},
}
"""Per domain: what to read from the simulator each step (dm_control's physics accessors)."""


def rollout(domain: str, task: str, act: Callable[[np.ndarray], np.ndarray], seed: int,
            settle: int) -> dict[str, float]:
    """One 1000-step episode: its return and the mean of each body quantity after ``settle``."""
    from bfm_gym.envs import make_env

    env = make_env(domain, task)
    obs, _ = env.reset(seed=seed)
    total, trace = 0.0, {k: [] for k in BODY[domain]}
    actions = []
    done = False
    while not done:
        action = act(obs)
        actions.append(np.asarray(action, np.float64))
        obs, r, terminated, truncated, _ = env.step(action)
        total += float(r)
        for key, read in BODY[domain].items():
            trace[key].append(read(env.unwrapped.physics))
        done = terminated or truncated
    env.close()
    a = np.clip(np.stack(actions[settle:]), -1.0, 1.0)
    return {"return": round(total, 1), **{k: round(float(np.mean(v[settle:])), 3) for k, v in trace.items()},
            # a policy stuck on one action vector: spread near 0 on every joint
            "action_spread": round(float(a.std(0).mean()), 3),
            "action_saturated": round(float((np.abs(a) > 0.99).mean()), 3)}


def uniform_policy(rng: np.random.Generator, action_dim: int) -> Callable[[np.ndarray], np.ndarray]:
    """Uniform random actions in [-1, 1], the action box of bfm_gym's envs."""
    return lambda obs: rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)


def latent_cosines(latents: dict[str, np.ndarray]) -> dict[tuple[str, str], float]:
    """Cosine between the inferred latents of every pair of tasks. Two tasks whose latents
    point the same way (cosine near 1) get the same policy: on data where both rewards are
    close to linear in one feature (cheetah walk and run are both a ramp in forward speed below
    2 m/s), the zero-shot return of one is tied to the other's."""
    names = list(latents)
    unit = {t: np.asarray(z, np.float64) / max(float(np.linalg.norm(z)), 1e-12) for t, z in latents.items()}
    return {(a, b): round(float(unit[a] @ unit[b]), 3)
            for i, a in enumerate(names) for b in names[i + 1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="Shipped name or model folder.")
    parser.add_argument("--tasks", required=True, help="Comma-separated tasks of its domain.")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--random-episodes", type=int, default=10)
    parser.add_argument("--settle", type=int, default=200, help="Steps left out of the body means.")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import torch

    import bfm_gym
    from bfm_gym.evaluation.zero_shot import task_z

    torch.set_num_threads(1)
    bfm = bfm_gym.load(args.model)
    domain = bfm.metadata.domain
    if domain not in BODY:
        raise SystemExit(f"gait_check knows the bodies of {sorted(BODY)}; {args.model} is a {domain} model")
    rows: dict[str, Any] = {}
    tasks = args.tasks.split(",")
    latents = {task: task_z(bfm, bfm.samples, task) for task in tasks}
    for task in tasks:
        z = latents[task]
        zero_shot = [rollout(domain, task, lambda obs, z=z: bfm.act(obs, z), s, args.settle)
                     for s in range(args.episodes)]
        uniform = uniform_policy(np.random.default_rng(0), bfm.action_dim)
        random = [rollout(domain, task, uniform, s, args.settle) for s in range(args.random_episodes)]
        rows[task] = {
            "zero_shot": {"episodes": zero_shot,
                          "mean_return": round(float(np.mean([e["return"] for e in zero_shot])), 1),
                          **{f"mean_{k}": round(float(np.mean([e[k] for e in zero_shot])), 3)
                             for k in (*BODY[domain], "action_spread", "action_saturated")}},
            "random_actions": {"returns": [e["return"] for e in random],
                               "mean_return": round(float(np.mean([e["return"] for e in random])), 1)},
        }
        print(task, rows[task]["zero_shot"]["mean_return"],
              {k: rows[task]["zero_shot"][f"mean_{k}"] for k in (*BODY[domain], "action_spread")},
              "random", rows[task]["random_actions"]["mean_return"], flush=True)
    cosines = latent_cosines(latents)
    for pair, value in cosines.items():
        print(f"cos(z_{pair[0]}, z_{pair[1]}) = {value:+.3f}")
    write_report(args.out, {"benchmark": "gait_check", "command": command(), "machine": machine(torch_threads=1),
                            "model": args.model, "domain": domain, "settle_steps": args.settle, "tasks": rows,
                            "latent_cosines": {f"{a},{b}": v for (a, b), v in cosines.items()}})


if __name__ == "__main__":
    main()
