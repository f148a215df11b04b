"""Bring your own env: collect -> pre-train -> wrap -> zero-shot -> adapt, on any Gymnasium env.

    python examples/04_your_own_env.py [--smoke] [--env Reacher-v5] [--out runs/byoe]

Any registered Gymnasium id with a ``Box`` action space works (MuJoCo envs also give
simulator-state resets, which LoLA uses). The same steps on the command line::

    bfm-gym collect --env Reacher-v5 --agent rnd --steps 100000 --out runs/byoe/data
    bfm-gym pretrain --dataset runs/byoe/data --config cpu --out runs/byoe/model
    bfm-gym tasks --env Reacher-v5
    bfm-gym eval --model runs/byoe/model --task native
    bfm-gym adapt --model runs/byoe/model --task native --adapter opti --out runs/byoe/adapt

(tasks registered in Python, like the two below, need a plugin to be seen by the command
line: see CONTRIBUTING.md, "Adding a task").

1. Tasks: the env's own reward is task ``native``; a task of your own is ``fn(obs, action,
   next_obs) -> float``, or ``fn(env) -> float`` on the MuJoCo simulator at the next state.
2. Collect: an exploration agent (``rnd`` here, ``random`` with ``--smoke``) records a Minari
   dataset with the env's rewards, terminations and simulator states.
3. Pre-train a BFM on it (the ``cpu`` preset; ``tiny`` and a few updates with ``--smoke``).
4. Wrap ``gym.make(ENV)`` with the model: its action is the task latent z.
5. Zero-shot: z for a task from the reward labels of dataset samples, no interaction.
6. Adapt: OpTI-BFM improves z online from the rewards it sees.

``--smoke`` (used by the tests) takes seconds and shows the plumbing only; the full run takes
hours on a laptop CPU and has not been benchmarked: its returns are whatever it prints.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

import bfm_gym
from bfm_gym.data import collect
from bfm_gym.envs import list_tasks, register_task
from bfm_gym.evaluation.zero_shot import InferenceSet, evaluate_zero_shot
from bfm_gym.experiments.adapt import adapt
from bfm_gym.models.inference import reward_z
from bfm_gym.pretraining import pretrain


def reach_tight(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> float:
    """Reacher: minus the fingertip-to-target distance after the step (``next_obs[8:10]``)."""
    return -float(np.linalg.norm(next_obs[8:10]))


def fingertip_right(env: gym.Env) -> float:
    """Reacher: how far right the fingertip is (x of its body, read from the simulator)."""
    return float(env.get_body_com("fingertip")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="Seconds instead of hours.")
    parser.add_argument("--env", default="Reacher-v5", help="A Gymnasium id with Box actions.")
    parser.add_argument("--out", default="runs/byoe")
    args = parser.parse_args()
    out = Path(args.out)
    env_id = args.env

    # 1. tasks: 'native' is always there; these two are for Reacher-v5 only
    if env_id == "Reacher-v5":
        register_task(env_id, "reach_tight", reach_tight, "fingertip on the target", overwrite=True)
        register_task(env_id, "fingertip_right", fingertip_right, "fingertip far right", overwrite=True)
    print(f"tasks of {env_id}: {', '.join(list_tasks(env_id))}")

    # 2. collect (resumable: rerun after an interruption and it continues)
    data = collect(env_id, out / "data", agent="random" if args.smoke else "rnd",
                   steps=600 if args.smoke else 100_000, seed=0, overwrite=True, progress=not args.smoke)
    print(f"dataset: {data} (coverage report: {data / 'coverage.png'})")

    # 3. pre-train (resumable as well)
    model = pretrain(data, out / "model", config="tiny" if args.smoke else "cpu",
                     updates=40 if args.smoke else 100_000, eval_every=0 if args.smoke else 10_000,
                     checkpoint_every=40 if args.smoke else 5_000, inference_samples=500 if args.smoke else 10_000,
                     progress=not args.smoke, overwrite=True)
    bfm = bfm_gym.load(model)
    print(f"model: {model}, trained on {bfm.metadata.extra['env']['id']} "
          f"(observations {bfm.metadata.extra['env']['observation_space']})")

    # 4. wrap the env itself: the action is now the latent z
    env = bfm_gym.wrap(gym.make(env_id), model=model)
    print(f"wrapped: action space {env.action_space}, state resets: {env.supports_state_reset}")

    # 5. zero-shot: z of the env's own task from the dataset's reward labels, one episode
    samples = InferenceSet.load(model)
    z = reward_z(bfm, samples, "native")
    env.reset(seed=0)
    total, done, steps = 0.0, False, 0
    while not done:
        _, reward, terminated, truncated, _ = env.step(env.z_to_action(z))
        total, steps, done = total + reward, steps + 1, terminated or truncated
    print(f"zero-shot on 'native': return {total:.2f} in {steps} steps")
    env.close()
    tasks = [t for t in list_tasks(env_id) if t != "native"]
    for task, result in evaluate_zero_shot(bfm, env_id, tasks, samples, episodes=1 if args.smoke else 10).items():
        print(f"  zero-shot {task:<16} {result.mean:8.2f}")

    # 6. adapt z online on one task
    task = "reach_tight" if env_id == "Reacher-v5" else "native"
    result = adapt(str(model), task, "opti", episodes=2 if args.smoke else 20, seed=0,
                   out=out / "adapt", progress=not args.smoke,
                   max_episode_steps=50 if args.smoke else None)
    first, last = result.records[0], result.records[-1]
    print(f"OpTI-BFM on {task}: first episode {first['return']:.2f}, last {last['return']:.2f}, "
          f"{last['env_steps']} env steps, records in {out / 'adapt' / 'records.csv'}")


if __name__ == "__main__":
    main()
