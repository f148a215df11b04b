"""Why OpTI-BFM stalls on the sparse maze: does its optimism ever find a reward?

    python benchmarks/opti_exploration.py --episodes 10 \
        --out benchmarks/results/opti_exploration_maze.json

OpTI-BFM regresses online rewards on phi; a reach reward of point_mass_maze is a
tolerance of radius about 4.5 cm around a room centre and zero elsewhere, so until an
episode passes near the target the estimate stays w = 0 and every choice is pure
exploration (the UCB bonus). For each reach task and each setting (selection every
step / 10 / 100 / 1000 steps, UCB and Thompson sampling) this runs OpTI for
``--episodes`` episodes without dataset labels and records, per episode: return,
largest single reward, closest distance to the target, the rooms visited, and |w|.
"""

from __future__ import annotations

import argparse
import os
import time

from _report import command, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

SETTINGS: dict[str, dict] = {
    "ucb-1": {"reselect_every": 1},
    "ucb-10": {"reselect_every": 10},
    "ucb-100": {"reselect_every": 100},
    "ucb-1000": {"reselect_every": 1000},
    "ts-10": {"mode": "ts", "reselect_every": 10},
}
REWARD_SEEN = 0.1
"""A step reward above this counts as having found the target (tolerance 0.1 at 3 cm)."""


def _room(xy: np.ndarray) -> str:
    return ("top" if xy[1] > 0 else "bottom") + ("_right" if xy[0] > 0 else "_left")


def run(model: str, task: str, config: dict, episodes: int, seed: int) -> list[dict]:
    """OpTI on one maze reach task; one row per episode."""
    import bfm_gym
    from bfm_gym.adapters.opti import OptiAdapter
    from bfm_gym.envs.dmc_env import DMCEnv
    from bfm_gym.envs.point_mass_maze import TARGETS
    from bfm_gym.experiments.adapt import episode_seed
    from bfm_gym.wrappers import LatentActionWrapper

    bfm = bfm_gym.load(model)
    env = LatentActionWrapper(DMCEnv("point_mass_maze", task), bfm, z_hold=1, action_map="raw")
    adapter = OptiAdapter(bfm, {"domain": "point_mass_maze", "task": task}, config, seed=seed)
    target = np.asarray(TARGETS[task.removeprefix("reach_")])
    rows = []
    for k in range(episodes):
        obs, _ = env.reset(seed=episode_seed(seed, k))
        adapter.on_episode_start(obs)
        total, best, closest, rooms, done = 0.0, 0.0, np.inf, set(), False
        while not done:
            obs, reward, terminated, truncated, info = env.step(adapter.act(obs))
            adapter.observe(info["transitions"])
            total += float(reward)
            best = max(best, float(np.max(info["transitions"].reward)))
            closest = min(closest, float(np.linalg.norm(obs[:2] - target)))
            rooms.add(_room(obs[:2]))
            done = terminated or truncated
        adapter.on_episode_end(total)
        rows.append({"episode": k, "return": round(total, 2), "max_step_reward": round(best, 4),
                     "closest_to_target_m": round(closest, 4), "rooms_visited": sorted(rooms),
                     "w_norm": round(float(np.linalg.norm(adapter.bandit.w_hat())), 5)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="point_mass_maze")
    parser.add_argument("--tasks", default="reach_top_left,reach_top_right,reach_bottom_left,reach_bottom_right")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="Comma list of setting names (ucb-K: UCB selection every K steps; ts-K: Thompson sampling).")
    parser.add_argument("--out", default="benchmarks/results/opti_exploration_maze.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {list(SETTINGS)}")
    results = []
    for name in names:
        for task in args.tasks.split(","):
            start = time.perf_counter()
            rows = run(args.model, task, SETTINGS[name], args.episodes, args.seed)
            entry = {
                "setting": name, "config": SETTINGS[name], "task": task,
                "episodes_with_reward": sum(r["max_step_reward"] > REWARD_SEEN for r in rows),
                "closest_to_target_m": min(r["closest_to_target_m"] for r in rows),
                "rooms_visited": sorted({room for r in rows for room in r["rooms_visited"]}),
                "mean_return": round(float(np.mean([r["return"] for r in rows])), 2),
                "seconds": round(time.perf_counter() - start, 1), "episodes": rows}
            results.append(entry)
            print({k: v for k, v in entry.items() if k != "episodes"}, flush=True)
    report = {"benchmark": "opti_exploration",
              "command": command(),
              "machine": machine(torch_threads=1),
              "model": args.model, "seed": args.seed, "episodes": args.episodes,
              "reward_seen_threshold": REWARD_SEEN, "results": results}
    write_report(args.out, report)


if __name__ == "__main__":
    main()
