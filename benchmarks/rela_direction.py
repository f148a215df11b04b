"""Does ReLA's latent gradient point toward a better latent? A check of the adapter's guide.

ReLA moves z up the gradient of ``J(z) = E_s[agg_k psi_k(s, pi(s, z), z)^T z_r + Q_res(s,
pi(s, z))]``: F's value of the projected reward ``phi^T z_r`` (the "F term") plus the residual
critic's value of what the projection misses (the "critic term"). For a perfect model the F
term is flat at the zero-shot latent ``proj(z_r)`` (``pi_{z_r}`` is optimal for the projected
reward), so any useful direction must come from the critic. ``benchmarks/latent_headroom.py``
finds, by real episodes, latents that do better than the zero-shot one; this script asks
whether ReLA's guide knows it. For every ReLA cell of a finished ``bfm-gym compare`` run it
restores the adapter at the end of its budget (critic, buffer, latent) and, on minibatches of
its own replay buffer:

* the tangent gradients of both terms at the zero-shot latent and at the learned one, their
  norms, and their cosine with the direction (on the sphere) to the headroom search's best
  latent for the task (a random direction's cosine has a spread of ~1/sqrt(d - 1): 0.14 at
  d = 50);
* both terms' values at the zero-shot and at the best latent, against the real returns the
  headroom search measured for them: does the guide rank the better latent higher?
* the angles from the zero-shot latent to the learned and to the best latent, and which term
  the move from the zero-shot to the learned latent followed (cosine with each gradient);
* a probe in real episodes: the zero-shot latent turned by a few degrees along F's gradient
  and toward the best latent, each played from the same start states, scored by the task's
  reward and by its projection ``phi(s')^T z_r``: does climbing F's value raise either?

    python benchmarks/rela_direction.py --run runs/cmp-walker-rela \\
        --headroom benchmarks/results/latent_headroom_walker_stop40_large.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

from _cpu import machine_info
from _report import command, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
import torch

import bfm_gym
from bfm_gym.adapters.rela import ReLAAdapter
from bfm_gym.evaluation.gradient_check import rotate, toward
from bfm_gym.experiments.run_folder import resolve_task


def restore(cell: Path, model: Any) -> ReLAAdapter:
    """The ReLA adapter of a finished compare cell, in its end state."""
    run = json.loads((cell / "run.json").read_text())
    spec = resolve_task(model.metadata.domain, run["task"]["task"], run["task"]["goal"])
    agent = ReLAAdapter(model, spec, run["config"], seed=run["seed"], samples=model.samples)
    with np.load(cell / "state.npz") as state:
        agent.load_state_dict(dict(state))
    return agent


def terms(agent: ReLAAdapter, z: np.ndarray, obs: torch.Tensor,
          pessimism: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Both terms of ReLA's objective at ``proj(z)`` on ``obs`` (``ReLAAdapter.objective_terms``,
    averaged over the states): values and tangent gradients."""
    leaf = torch.as_tensor(z, dtype=torch.float32).clone().requires_grad_(True)
    value, q_res = agent.objective_terms(obs, leaf, pessimism=pessimism)
    f_term, q_term = value.mean(), q_res.mean()
    g_f = torch.autograd.grad(f_term, leaf, retain_graph=True)[0]
    g_q = torch.autograd.grad(q_term, leaf)[0]
    unit = leaf.detach() / leaf.detach().norm()
    tangent = lambda g: (g - (g @ unit) * unit).numpy()  # noqa: E731
    return {"f_value": float(f_term.detach()), "q_value": float(q_term.detach()),
            "g_f": tangent(g_f), "g_q": tangent(g_q)}  # fmt: skip


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def angle(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine(a, b)))))


def cell_report(agent: ReLAAdapter, best: dict[str, Any], batches: int, batch_size: int,
                seed: int, pessimism: float | None = None) -> dict[str, Any]:  # fmt: skip
    model = agent.bfm
    z0 = np.asarray(model.project(agent.z_r.numpy()), dtype=np.float32)
    z_learned = agent.learned_latent()
    z_best = np.asarray(model.project(np.asarray(best["best_z"], np.float32)), dtype=np.float32)
    if "zero_shot_z" in best:  # the search's zero-shot latent must be this model's
        same = cosine(z0, np.asarray(best["zero_shot_z"], np.float64))
        if same < 0.99:
            raise SystemExit(
                f"The headroom JSON's zero-shot latent is not this model's (cosine {same:.3f}): "
                "pass the latent_headroom.py JSON of the model the compare run used."
            )
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(batches):
        idx = torch.randint(agent.buffer.size, (batch_size,), generator=gen)
        obs = agent.buffer.sample(idx)["obs"]
        rows.append({name: terms(agent, z, obs, pessimism) for name, z in
                     (("zero_shot", z0), ("learned", z_learned), ("best", z_best))})  # fmt: skip
    g_f0 = np.mean([r["zero_shot"]["g_f"] for r in rows], axis=0)
    g_q0 = np.mean([r["zero_shot"]["g_q"] for r in rows], axis=0)
    moved = toward(z0, z_learned) if angle(z0, z_learned) > 1e-3 else np.zeros_like(z0)
    out: dict[str, Any] = {
        "angle_zero_shot_to_learned_deg": round(angle(z0, z_learned), 2),
        "angle_zero_shot_to_best_deg": round(angle(z0, z_best), 2),
        "angle_learned_to_best_deg": round(angle(z_learned, z_best), 2),
        "cos_move_with_f_term": round(cosine(moved, g_f0), 3),
        "cos_move_with_critic_term": round(cosine(moved, g_q0), 3),
        "headroom_returns": {"zero_shot": best["zero_shot_return"], "best": best["best_return"],
                             "gain": best["gain"]},
        "guide_values": {
            name: {"f_term": round(float(np.mean([r[name]["f_value"] for r in rows])), 3),
                   "critic_term": round(float(np.mean([r[name]["q_value"] for r in rows])), 3)}
            for name in ("zero_shot", "best")
        },
    }  # fmt: skip
    gv = out["guide_values"]
    out["guide_ranks_best_higher"] = {
        "f_term": gv["best"]["f_term"] > gv["zero_shot"]["f_term"],
        "f_plus_critic": (gv["best"]["f_term"] + gv["best"]["critic_term"]
                          > gv["zero_shot"]["f_term"] + gv["zero_shot"]["critic_term"]),
    }  # fmt: skip
    for name, z in (("zero_shot", z0), ("learned", z_learned)):
        d = toward(z, z_best)
        d = np.zeros_like(z) if d is None else d  # the search kept z: no direction, cosines 0
        g_f = np.mean([r[name]["g_f"] for r in rows], axis=0)
        g_q = np.mean([r[name]["g_q"] for r in rows], axis=0)
        out[f"gradient_at_{name}"] = {
            "f_term_norm": round(float(np.linalg.norm(g_f)), 4),
            "critic_term_norm": round(float(np.linalg.norm(g_q)), 4),
            "cos_f_term_to_best": round(cosine(g_f, d), 3),
            "cos_critic_term_to_best": round(cosine(g_q, d), 3),
            "cos_total_to_best": round(cosine(g_f + g_q, d), 3),
            "cos_between_batches_total": round(float(np.mean([
                cosine(a[name]["g_f"] + a[name]["g_q"], b[name]["g_f"] + b[name]["g_q"])
                for i, a in enumerate(rows) for b in rows[i + 1:]])), 3) if len(rows) > 1 else None,
        }  # fmt: skip
    return out


class _ProjectedReward(gym.Wrapper):
    """The task's reward replaced by its projection on the features, ``phi(s')^T z_r`` (what
    F's value is the value of)."""

    def __init__(self, env: Any, model: Any, z_r: np.ndarray) -> None:
        super().__init__(env)
        self._model, self._z_r = model, z_r

    def step(self, action: Any) -> Any:
        obs, _, terminated, truncated, info = self.env.step(action)
        phi = np.asarray(self._model.phi(np.asarray(obs, np.float32)[None]))[0]
        return obs, float(phi @ self._z_r), terminated, truncated, info


def probe(model: Any, task: str, z0: np.ndarray, directions: dict[str, np.ndarray],
          degrees: list[float], seeds: list[int], z_r: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """Returns of the zero-shot latent turned by each angle along each direction, from the same
    start states (one batched policy call per step for every latent and start): of the task's
    reward, and of its projection ``phi^T z_r``."""
    from bfm_gym.envs.gym_env import env_info_of, make_task_env
    from bfm_gym.evaluation.headroom import latent_returns

    names = [("zero_shot", 0.0)] + [(n, a) for n in directions for a in degrees]
    zs = np.stack([z0] + [rotate(z0, directions[n], a) for n, a in names[1:]])
    domain = model.metadata.domain

    def make_env() -> Any:
        return make_task_env(domain, task, env_info=env_info_of(model))

    out: dict[str, Any] = {"start_seeds": seeds}
    for reward, env_fn in (
        ("task_reward", make_env),
        ("projected_reward", lambda: _ProjectedReward(make_env(), model, z_r)),
    ):
        returns = latent_returns(model, env_fn, zs, seeds)
        base = returns[0]
        part: dict[str, Any] = {"zero_shot_return": round(float(base.mean()), 1)}
        for (name, deg), r in zip(names[1:], returns[1:], strict=True):
            diff = r - base
            part.setdefault(name, {})[f"{deg:g}deg"] = {
                "return": round(float(r.mean()), 1),
                "gain": round(float(diff.mean() / max(abs(base.mean()), 1e-9)), 4),
                "paired_diff_se": round(float(diff.std(ddof=1) / math.sqrt(len(diff))), 1),
            }
        out[reward] = part
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run", type=Path, required=True, help="a bfm-gym compare folder with rela cells"
    )
    parser.add_argument(
        "--headroom",
        type=Path,
        required=True,
        help="latent_headroom.py JSON of the same model (its best_z per task)",
    )
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pessimism",
        type=float,
        default=None,
        help="aggregate F's heads with this pessimism (default: each run's; 0: mean)",
    )
    parser.add_argument(
        "--probe-degrees",
        default="5,10,20",
        help="turn the zero-shot latent this far along F's gradient and toward the "
        "best latent, and play it ('' : no probe)",
    )
    parser.add_argument(
        "--probe-seeds", type=int, default=10, help="start states per probed latent"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rela_direction.json"))
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    compare = json.loads((args.run / "compare.json").read_text())
    model = bfm_gym.load(compare["model"])
    headroom = json.loads(args.headroom.read_text())["tasks"]
    cells = sorted(p for p in (args.run / "cells").glob("rela__*") if (p / "state.npz").is_file())
    if not cells:
        raise SystemExit(f"{args.run}: no finished ReLA cell (cells/rela__*/state.npz).")
    report: dict[str, Any] = {"benchmark": "rela_direction", "command": command(),
                              "machine": machine_info(), "run": str(args.run),
                              "headroom": str(args.headroom), "z_dim": model.z_dim,
                              "pessimism": args.pessimism,
                              "random_direction_cos_spread": round(1 / math.sqrt(model.z_dim - 1), 3),
                              "cells": {}}  # fmt: skip
    degrees = [float(x) for x in args.probe_degrees.split(",") if x.strip()]
    if degrees:
        report["probes"] = {}
    for cell in cells:
        task = json.loads((cell / "run.json").read_text())["task"]["task"]
        key = f"{model.metadata.domain}-{task}"
        if key not in headroom:
            continue
        agent = restore(cell, model)
        report["cells"][cell.name] = cell_report(agent, headroom[key], args.batches,
                                                 args.batch_size, args.seed, args.pessimism)  # fmt: skip
        r = report["cells"][cell.name]
        g = r["gradient_at_zero_shot"]
        print(
            f"{cell.name:28s} angle to best {r['angle_zero_shot_to_best_deg']:5.1f} deg, "
            f"moved {r['angle_zero_shot_to_learned_deg']:5.2f} deg; cos to best: F "
            f"{g['cos_f_term_to_best']:+.2f}, critic {g['cos_critic_term_to_best']:+.2f}, total "
            f"{g['cos_total_to_best']:+.2f}; |g_F| {g['f_term_norm']:.3g} |g_Q| "
            f"{g['critic_term_norm']:.3g}; ranks best higher: {r['guide_ranks_best_higher']}"
        )
        # once per task, on its first cell: z0 and F's gradient at z0 hardly depend on the buffer
        if degrees and key not in report["probes"]:
            z0 = np.asarray(model.project(agent.z_r.numpy()), dtype=np.float32)
            gen = torch.Generator().manual_seed(args.seed)
            obs = agent.buffer.sample(torch.randint(agent.buffer.size, (4 * args.batch_size,),
                                                    generator=gen))["obs"]  # fmt: skip
            t = terms(agent, z0, obs, args.pessimism)
            best = np.asarray(model.project(np.asarray(headroom[key]["best_z"], np.float32)))
            directions = {"along_f_term_gradient": t["g_f"] / np.linalg.norm(t["g_f"])}
            to_best = toward(z0, best)
            if to_best is not None:  # the search found a latent other than the zero-shot one
                directions["toward_best_latent"] = to_best
            seeds = list(range(10_000, 10_000 + args.probe_seeds))
            report["probes"][key] = probe(model, task, z0, directions, degrees, seeds,
                                          agent.z_r.numpy())  # fmt: skip
            print(key, json.dumps(report["probes"][key]))
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
