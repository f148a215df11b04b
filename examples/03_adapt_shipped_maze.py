"""Zero-shot, then fast adaptation in latent space, with the shipped maze BFM.

    python examples/03_adapt_shipped_maze.py [--smoke] [--task reach_bottom_right] [--out runs/demo]

This is what ``make demo`` runs.

1. Load the shipped ``point_mass_maze`` model (pre-trained here without rewards; see
   ``bfm_gym/pretrained/point_mass_maze/MODEL_CARD.md``).
2. Zero-shot: infer the task latent z_r = normalise(E[r(s') B(s')]) from the model's
   reward-labelled inference samples and run pi(a | s, z_r) on every reach task.
3. Adapt: LoLA (lookahead latent adaptation) improves z online on one task, counting every
   simulated lookahead step against the budget. Its real episodes alternate between the
   zero-shot z and the learned one, and evaluation holds the learned z once its real returns
   beat the zero-shot z's (``select="race"``, LoLA's default), so the curve stays at the
   zero-shot level until then. Every ``--eval-every`` episodes, z is frozen
   and scored on the same 5 start states as the zero-shot z (the maze's return depends
   mostly on the start room, so single training episodes zig-zag; the paired evaluation
   shows what z learned). OUT/adapt/curve.png draws those evaluation points against the
   zero-shot level; OUT/adapt/policy.gif shows a whole episode from the first evaluation
   start state at the zero-shot z and after every ``--video-every`` episodes, side by side. Records in
   OUT/adapt/records.csv, TensorBoard logs in OUT/adapt/tb.

``--smoke`` (used by the tests) runs 1 evaluation episode per task and 2 short episodes of
adaptation.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import torch

import bfm_gym
from bfm_gym.envs import list_tasks
from bfm_gym.evaluation.zero_shot import InferenceSet, evaluate_zero_shot
from bfm_gym.experiments.adapt import adapt
from bfm_gym.pretrained import resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="A few seconds instead of minutes.")
    parser.add_argument("--task", default="reach_bottom_right")
    parser.add_argument("--episodes", type=int, default=20, help="LoLA episodes.")
    parser.add_argument("--eval-every", type=int, default=2, help="Episodes between evaluation points.")
    parser.add_argument("--video-every", type=int, default=5, help="Episodes between panels of policy.gif.")
    parser.add_argument("--out", default="runs/demo")
    args = parser.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    out = Path(args.out)

    bfm = bfm_gym.load("point_mass_maze")
    print(f"model: point_mass_maze, z_dim {bfm.z_dim}, {bfm.metadata.training_steps} updates")
    samples = InferenceSet.load(resolve("point_mass_maze"))
    tasks = [t for t in list_tasks("point_mass_maze") if t.startswith("reach_")]
    episodes = 1 if args.smoke else 10
    results = evaluate_zero_shot(bfm, "point_mass_maze", tasks, samples, episodes=episodes, seed=0)
    print(f"\nzero-shot ({episodes} episode(s) per task, no reward seen online):")
    for task, r in results.items():
        print(f"  {task:<20} {r.mean:7.1f}  95% CI [{r.ci95[0]:.1f}, {r.ci95[1]:.1f}]")

    print(f"\nLoLA on {args.task}: searching z online, lookahead steps counted in the budget")
    result = adapt("point_mass_maze", args.task, "lola", episodes=2 if args.smoke else args.episodes, seed=0,
                   out=out / "adapt", max_episode_steps=100 if args.smoke else None,
                   eval_every=1 if args.smoke else args.eval_every, eval_episodes=5,
                   video_every=1 if args.smoke else args.video_every, video_steps=8 if args.smoke else 1000,
                   progress=not args.smoke)
    s = result.summary
    paired = s["eval_last_vs_zero_shot"]
    n = paired["start_states"]
    print(f"  evaluation on {n} fixed start states (z frozen; not counted in the budget):")
    print(f"    zero-shot z            {s['zero_shot']:7.1f} ± {s['zero_shot_std']:.1f}")
    print(f"    after {s['eval_last_episode']:>2} episodes      {s['eval_last']:7.1f} ± {s['eval_last_std']:.1f}"
          f"   (start by start: {paired['mean_difference']:+.1f} on average, better on "
          f"{paired['better']}, worse on {paired['worse']} of {n})")
    print(f"  training episodes (each from its own start): first {s['train_first']:.1f}, "
          f"last {s['train_last']:.1f}")
    print(f"  budget spent: {s['env_steps']} env steps (lookahead included); evaluation took "
          f"{s['evaluation']['env_steps']} more, not counted")
    print(f"\ncurve: {out / 'adapt' / 'curve.png'}   policy: {out / 'adapt' / 'policy.gif'}")
    print(f"records: {out / 'adapt' / 'records.csv'}")
    print(f"TensorBoard: tensorboard --logdir {out / 'adapt' / 'tb'}")


if __name__ == "__main__":
    main()
