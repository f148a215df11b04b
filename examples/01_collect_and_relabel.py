"""Collect reward-free data, then relabel it offline for any task.

    python examples/01_collect_and_relabel.py [--smoke] [--out runs/example01]

1. Collect a reward-free dataset of the four-room maze with the RND exploration agent.
2. Load it as flat transitions (obs, action, next_obs, simulator next-state).
3. Relabel it for the four reach tasks and for a goal of your own, and define a
   brand-new reward as a plain Python function: no new data needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bfm_gym.data import collect, load_transitions
from bfm_gym.data.coverage import episode_returns
from bfm_gym.envs.relabel import Relabeler


def in_right_half(physics) -> float:
    """A reward the library never heard of: 1 while the mass is in the right half."""
    return float(physics.mass_position()[0] > 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny run (used by the tests)")
    parser.add_argument("--out", type=Path, default=Path("runs/example01"))
    args = parser.parse_args()
    episodes = 2 if args.smoke else 50
    path = collect("point_mass_maze", args.out / "maze-rnd", agent="rnd", episodes=episodes,
                   seed=0, overwrite=True, progress=not args.smoke,
                   agent_config={"warmup_steps": 1000} if args.smoke else None)
    data = load_transitions(path)
    print(f"{len(data)} transitions from {path}")
    relabeler = Relabeler("point_mass_maze")
    for task in ["reach_top_left", "reach_top_right", "reach_bottom_left", "reach_bottom_right"]:
        returns = episode_returns(data, relabeler.rewards(data.next_state, task))
        print(f"{task:<20} best episode return {returns.max():8.1f}")
    goal = relabeler.rewards(data.next_state, None, goal=(0.2, -0.05))
    right = relabeler.rewards(data.next_state, in_right_half)
    print(f"goal (0.2, -0.05): {int((goal > 0.5).sum())} steps near it")
    print(f"custom reward 'in_right_half': {100 * right.mean():.1f}% of steps")
    assert np.isfinite(right).all()


if __name__ == "__main__":
    main()
