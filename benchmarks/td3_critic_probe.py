"""Why TD3 fine-tuning collapses on sparse maze tasks: its critic and actor along the run.

    OMP_NUM_THREADS=1 BFM_GYM_LOAD_PLUGINS=sb3 python benchmarks/td3_critic_probe.py \\
        --model point_mass_maze --task reach_top_left --episodes 10 \\
        --out benchmarks/results/td3_critic_probe_maze_top_left.json

``sb3-td3-finetune`` starts as the BFM actor at the zero-shot latent z_r with a critic that is
the BFM's own value, Q(s, a) = c F(s, a, z_r)^T z_r. On the maze's reach tasks it falls from
the zero-shot level to about 0 within a few episodes (docs/adapters.md, "The same check on the
maze"). This script watches one such run, seed 0, episode by episode, on a fixed **probe**:
the states the zero-shot policy visits from the run's evaluation start states (the same start
states ``bfm-gym compare`` scores from), with the zero-shot policy's actions a0.

After every training episode it records:

- ``train_return``: the return of the training episode (exploration noise on, learning);
- ``eval_return``: the return from those start states, actor deterministic (compare's score);
- ``q_zero_shot_actions``: the critic's mean Q(s, a0) over the probe, and over the probe's
  states at the target (reward > ``AT_TARGET``: the maze's reward decays smoothly with the
  distance, so "> 0" would hold almost everywhere near the path);
- ``q_actor_actions``: the mean Q(s, pi(s)) at the current actor's actions;
- ``actor_shift``: the mean |pi(s) - a0| over the probe (how far the actor moved);
- ``buffer_at_target``: the fraction of replay-buffer transitions with a reward > ``AT_TARGET``.

Point 0 is before any training (critic = the BFM's value, actor = the BFM actor at z_r).
``--set KEY=VALUE`` changes a field of the adapter's config (as ``bfm-gym compare --set
sb3-td3-finetune.KEY=VALUE``). Writes JSON (with the command and machine) and a PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import command, finish_plot, machine, write_report

ADAPTER = "sb3-td3-finetune"
AT_TARGET = 0.5
"""A reward above this counts as being at the target (a maze reach reward is ~0.8-1 there)."""


def _rollout(agent: Any, env: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations, actions and rewards of one deterministic episode of ``agent``'s actor."""
    obs, _ = env.reset(seed=seed)
    states, actions, rewards = [], [], []
    done = False
    while not done:
        a = agent.act(obs)
        states.append(np.asarray(obs, np.float32))
        actions.append(np.asarray(a, np.float32))
        obs, r, term, trunc, _ = env.step(a)
        rewards.append(float(r))
        done = bool(term or trunc)
    return np.stack(states), np.stack(actions), np.asarray(rewards)


def _mean_q(model: Any, states: np.ndarray, actions: np.ndarray) -> float:
    """The critic's Q averaged over its heads and the rows."""
    import torch

    with torch.no_grad():
        obs = torch.as_tensor(states, dtype=torch.float32)
        act = torch.as_tensor(actions, dtype=torch.float32)
        heads = model.critic(obs, act)
        return float(torch.stack([q.squeeze(-1) for q in heads]).mean())


def _point(agent: Any, env: Any, probe: dict[str, np.ndarray], seeds: list[int],
           episode: int, train_return: float | None) -> dict[str, Any]:
    """One row: evaluation return, critic values and actor shift on the probe, buffer rewards."""
    model = agent.model
    returns = [agent.run_episode(env, s, learn=False)[0] for s in seeds]
    states, a0, at = probe["states"], probe["actions"], probe["at_target"]
    now = np.stack([agent.act(s) for s in states])
    buffer = model.replay_buffer
    n = buffer.buffer_size if buffer.full else buffer.pos
    row = {
        "episode": episode,
        "train_return": None if train_return is None else round(train_return, 2),
        "eval_return": round(float(np.mean(returns)), 2),
        "eval_returns": [round(float(r), 2) for r in returns],
        "q_zero_shot_actions": round(_mean_q(model, states, a0), 3),
        "q_zero_shot_actions_at_target": (
            round(_mean_q(model, states[at], a0[at]), 3) if at.any() else None
        ),
        "q_actor_actions": round(_mean_q(model, states, now), 3),
        "actor_shift": round(float(np.abs(now - a0).mean()), 4),
        "buffer_transitions": int(n),
        "buffer_at_target": round(float((buffer.rewards[:n] > AT_TARGET).mean()), 4) if n else None,
    }
    print({k: v for k, v in row.items() if k != "eval_returns"}, flush=True)
    return row


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["episode"] for r in rows]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax.plot(ep, [r["eval_return"] for r in rows], "o-", label="evaluation return (probe starts)")
    ax.plot(ep[1:], [r["train_return"] for r in rows[1:]], "x:", label="training episode return")
    ax.set_ylabel("return")
    ax.set_xlabel("training episodes")
    ax.legend(fontsize=7, loc="center right")
    sx = ax.twinx()
    sx.plot(ep, [r["actor_shift"] for r in rows], "d--", color="tab:red")
    sx.set_ylabel("actor shift: mean |pi(s) - a0| on the probe", color="tab:red", fontsize=8)
    bx.plot(ep, [r["q_zero_shot_actions"] for r in rows], "o-", label="Q(s, a0), probe states")
    at = [r["q_zero_shot_actions_at_target"] for r in rows]
    if all(v is not None for v in at):
        bx.plot(ep, at, "s-", label="Q(s, a0), probe states at the target")
    bx.plot(ep, [r["q_actor_actions"] for r in rows], "^-", label="Q(s, pi(s)), probe states")
    fig.suptitle(title, fontsize=9)
    finish_plot(fig, bx, path, xlabel="training episodes", ylabel="critic value",
                title="the critic on the probe")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="point_mass_maze")
    ap.add_argument("--task", default="reach_top_left")
    ap.add_argument("--episodes", type=int, default=10, help="Training episodes (1000 steps each).")
    ap.add_argument("--starts", type=int, default=5, help="Evaluation start states (the probe).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="A field of the adapter's config, e.g. learning_rate=3e-5.")
    ap.add_argument("--out", required=True, help="JSON path (the PNG goes beside it).")
    ap.add_argument("--replot", action="store_true", help="Only redraw the PNG of the JSON --out.")
    args = ap.parse_args()
    out = Path(args.out)
    if args.replot:
        report = json.loads(out.read_text())
        _plot(report["points"], out.with_suffix(".png"), _title(report))
        return
    if args.episodes < 1 or args.starts < 1:
        raise SystemExit("--episodes and --starts must be >= 1.")

    import torch

    torch.set_num_threads(1)
    import bfm_gym
    from bfm_gym.envs.gym_env import env_info_of, make_task_env
    from bfm_gym.experiments.compare import parse_overrides
    from bfm_gym.experiments.run_folder import episode_seed, evaluation_seeds, resolve_task
    from bfm_gym.plugins import load_plugins

    registry = load_plugins().adapters
    if ADAPTER not in registry:
        raise SystemExit(f"{ADAPTER} is not registered: set BFM_GYM_LOAD_PLUGINS=sb3.")
    config = parse_overrides([f"{ADAPTER}.{kv}" for kv in args.overrides]).get(ADAPTER, {})
    cls = registry[ADAPTER][0]
    bfm = bfm_gym.load(args.model)
    spec = resolve_task(bfm.metadata.domain, args.task, None)
    agent = cls(bfm, spec, cls.config_class.from_dict(config), seed=args.seed, samples=bfm.samples)
    env = make_task_env(bfm.metadata.domain, spec["task"], goal=spec["goal"],
                        env_info=env_info_of(bfm))
    agent._built_for(env)  # the SB3 model exists before the first episode: probe point 0
    seeds = evaluation_seeds(args.seed, args.starts)
    parts = [_rollout(agent, env, s) for s in seeds]
    states = np.concatenate([p[0] for p in parts])
    actions = np.concatenate([p[1] for p in parts])
    rewards = np.concatenate([p[2] for p in parts])
    probe = {"states": states, "actions": actions, "at_target": rewards > AT_TARGET}

    start = time.process_time()
    rows = [_point(agent, env, probe, seeds, 0, None)]
    for k in range(args.episodes):
        ret, _ = agent.run_episode(env, episode_seed(args.seed, k), learn=True)
        rows.append(_point(agent, env, probe, seeds, k + 1, ret))
    report = {
        "benchmark": "td3_critic_probe",
        "command": command(),
        "machine": machine(threads=1, load_average_at_end=[round(x, 2) for x in os.getloadavg()]),
        "model": args.model,
        "task": spec["task"],
        "adapter": ADAPTER,
        "config": agent.config.to_dict(),
        "overrides": args.overrides,
        "seed": args.seed,
        "probe": {"start_seeds": seeds, "states": len(states),
                  "states_at_target": int(probe["at_target"].sum()),
                  "zero_shot_return": round(float(rewards.sum() / len(seeds)), 2)},
        "cpu_seconds": round(time.process_time() - start, 1),
        "points": rows,
    }
    write_report(out, report)
    _plot(rows, out.with_suffix(".png"), _title(report))


def _title(report: dict[str, Any]) -> str:
    changed = report.get("overrides") or []
    return (f"{report['adapter']} on {report['model']} {report['task']}, seed {report['seed']}"
            + (f" ({', '.join(changed)})" if changed else ""))


if __name__ == "__main__":
    main()
