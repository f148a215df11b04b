"""Env and collection throughput, measured in one run.

For each domain: steps/s of the raw dm_control env (``suite.load(...).step``, or the
maze's own ``control.Environment``) against the bfm_gym env (``gym.make`` id,
including Gymnasium's checker wrappers, and the bare ``DMCEnv``), with the same
uniform random actions; the goal is a ratio >= 0.85. Then collection steps/s of
each collector agent (``collect()`` end to end, without the final Minari write).

The bare env is also timed reading dm_control's observation dict instead of the domain's
fast ``observe`` (``speedup_fast_observe``).

    python benchmarks/env_throughput.py [--steps 5000] [--out benchmarks/results/env_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _report import machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

import bfm_gym
from bfm_gym.envs import make_env
from bfm_gym.envs.registration import env_id

DOMAINS = ["walker", "cheetah", "quadruped", "point_mass_maze"]
TASK = {"walker": "run", "cheetah": "run", "quadruped": "walk", "point_mass_maze": "reach_top_left"}


def _time_steps(step, reset, actions: np.ndarray) -> float:
    reset()
    start = time.perf_counter()
    for i, a in enumerate(actions):
        if i % 1000 == 999:
            reset()
        step(a)
    return len(actions) / (time.perf_counter() - start)


def env_ratio(domain: str, steps: int, repeats: int) -> dict:
    if domain == "point_mass_maze":  # its dm_control task computes the same reach reward
        from bfm_gym.envs import point_mass_maze

        raw = point_mass_maze.load(0, target=point_mass_maze.TARGETS["top_left"])
    else:  # dm_control suite task of the same reward
        from dm_control import suite

        raw = suite.load(domain, TASK[domain], task_kwargs={"random": 0})
    spec = raw.action_spec()
    rng = np.random.default_rng(0)
    actions = rng.uniform(spec.minimum, spec.maximum, (steps, *spec.shape))
    bare = make_env(domain, TASK[domain])
    made = gym.make(env_id(domain, TASK[domain]))
    # the same bare env reading dm_control's observation dict instead of the domain's fast
    # ``observe`` (what every suite domain did before it had one)
    dict_obs = make_env(domain, TASK[domain])
    dict_obs._fast_observe = None
    results = {"raw": [], "bfm_gym_bare": [], "bfm_gym_make": [], "bfm_gym_bare_dict_observation": []}
    for _ in range(repeats):  # interleave to share any machine noise fairly
        results["raw"].append(_time_steps(raw.step, raw.reset, actions))
        results["bfm_gym_bare"].append(_time_steps(bare.step, lambda: bare.reset(seed=0), actions))
        results["bfm_gym_make"].append(_time_steps(made.step, lambda: made.reset(seed=0), actions))
        results["bfm_gym_bare_dict_observation"].append(
            _time_steps(dict_obs.step, lambda: dict_obs.reset(seed=0), actions))
    best = {k: max(v) for k, v in results.items()}
    return {
        "steps_per_s": {k: round(v, 1) for k, v in best.items()},
        "ratio_bare_vs_raw": round(best["bfm_gym_bare"] / best["raw"], 3),
        "ratio_make_vs_raw": round(best["bfm_gym_make"] / best["raw"], 3),
        "speedup_fast_observe": round(best["bfm_gym_bare"] / best["bfm_gym_bare_dict_observation"], 3),
    }


def collection_speed(domain: str, agent: str, episodes: int, tmp: Path) -> float:
    from bfm_gym.data.collection import collect

    out = tmp / f"{domain}-{agent}"
    start = time.perf_counter()
    # RND's first warmup_steps are pure OU noise; a short warm-up makes the timed
    # episodes measure the learning regime (an update every 50 steps).
    config = {"warmup_steps": 1000} if agent == "rnd" else None
    collect(domain, out, agent=agent, episodes=episodes, overwrite=True, progress=False,
            coverage=False, agent_config=config)
    elapsed = time.perf_counter() - start
    manifest = json.loads((out / "bfm_gym.json").read_text())
    return round(float(manifest["collect_steps_per_second"]), 1), round(elapsed, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--collect-episodes", type=int, default=3)
    parser.add_argument("--domains", default=",".join(DOMAINS))
    parser.add_argument("--agents", default="random,ou,rnd", help="Collector agents to time ('none': skip).")
    parser.add_argument("--out", default="benchmarks/results/env_throughput.json")
    args = parser.parse_args()
    import tempfile

    import torch

    torch.set_num_threads(1)
    domains = args.domains.split(",")
    report: dict = {
        "benchmark": "env_throughput",
        "command": "python benchmarks/env_throughput.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "machine": machine(),
        "bfm_gym_version": bfm_gym.__version__,
        "goal": "ratio_make_vs_raw >= 0.85 for every domain",
        "env": {},
        "collection_steps_per_s": {},
        "collection_note": "rnd measured with warmup_steps=1000, so nearly all timed steps "
                           "include its online training",
    }
    for domain in domains:
        report["env"][domain] = env_ratio(domain, args.steps, args.repeats)
        print(domain, report["env"][domain], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for domain in domains:
            for agent in [a for a in args.agents.split(",") if a not in ("", "none")]:
                sps, _wall = collection_speed(domain, agent, args.collect_episodes, Path(tmp))
                report["collection_steps_per_s"][f"{domain}/{agent}"] = sps
                print(domain, agent, sps, "steps/s", flush=True)
    report["goal_met"] = all(v["ratio_make_vs_raw"] >= 0.85 for v in report["env"].values())
    write_report(args.out, report)


if __name__ == "__main__":
    main()
