"""Zero-shot quality of BFMs: 10 episodes per task, 95 % intervals, JSON out.

Two modes:

* ``--models walker,point_mass_maze`` (shipped names or model folders): evaluates
  each model on every task of its domain with its shipped inference samples and
  checks each domain's quality floor on the mean over its benchmark tasks (``Domain.floor``
  in ``bfm_gym/envs/domains.py``, the one place the floors are set).
* ``--compare-variants --dataset DIR --updates N``: trains plain FB, AR-FB
  (``ar_blocks=2``), FB-AW (``actor_loss=awr``) and FB-AWARE (both) on the same
  data with the same budget and seed, then evaluates each the same way (``--dataset``
  repeated mixes datasets; ``--set KEY=VALUE`` changes the base config of all four).
* ``--compare-families --dataset DIR --updates N``: trains an FB and a HILP model
  (``--config`` preset of each family) on the same data with the same update budget
  and seed, then evaluates both the same way.
* ``--models walker --inference-draws 10000x3,50000x2 --dataset DIR``: how much of a zero-shot
  figure is the draw of the inference samples. Each model is evaluated on the same episodes
  with its shipped samples and with fresh draws of the given sizes from its dataset
  (``SIZExDRAWS``; draw k uses seed k), so the spread between draws of one size, and any gain
  from more samples, can be read against the floors.
* ``--env Reacher-v5 --models reacher --sac-steps 50000``: a model of a Gymnasium env
  against Stable-Baselines3 SAC trained on each task alone for ``--sac-steps`` env steps
  (seed ``--seed``, default hyperparameters). Both are evaluated on the same episodes
  (deterministic policies, ``--episodes`` resets with seeds ``--eval-seed + k``). Floor:
  over the env's floor tasks (Reacher-v5: its four reach tasks), the median of zero-shot
  return / SAC return is >= 0.7. Each SAC run is kept in ``--workdir`` (rerun to resume; a
  finished task is not retrained).

Models of several families (``--models walker,runs/walker-hilp``) are printed side by
side per task (and stored under ``side_by_side``).

    python benchmarks/zero_shot.py --models point_mass_maze --out benchmarks/results/zero_shot.json
    python benchmarks/zero_shot.py --env Reacher-v5 --models reacher --sac-steps 50000 \\
        --threads 1 --workdir runs/sac-reacher --out benchmarks/results/zero_shot_reacher.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _report import command, machine, write_report

from bfm_gym.config import parse_set
from bfm_gym.errors import UserError
from bfm_gym.utils.machine import cpu_kind, cpu_model

os.environ.setdefault("MUJOCO_GL", "egl")

VARIANTS = {
    "FB": {},
    "AR-FB": {"ar_blocks": 2},
    "FB-AW": {"actor_loss": "awr"},
    "FB-AWARE": {"ar_blocks": 2, "actor_loss": "awr"},
}


def evaluate_model(model: str, episodes: int, seed: int) -> dict:
    from bfm_gym.evaluation.report import zero_shot_report

    return zero_shot_report(model, episodes=episodes, seed=seed)


def inference_draws(model: str, datasets: list[str], draws: list[tuple[int, int]], episodes: int,
                    seed: int) -> dict:
    """Zero-shot of ``model`` with its shipped inference samples and with fresh draws of
    ``(size, count)`` from ``datasets``, every one on the same episodes."""
    import numpy as np

    import bfm_gym
    from bfm_gym.envs.domains import get_domain
    from bfm_gym.evaluation.zero_shot import InferenceSet, evaluate_zero_shot
    from bfm_gym.models.inference import reward_z
    from bfm_gym.pretraining import _load_datasets

    bfm = bfm_gym.load(model)
    tasks = list(get_domain(bfm.metadata.domain).tasks)
    transitions = _load_datasets([Path(d) for d in datasets])
    sets = [("shipped", len(bfm.samples.next_obs), None, bfm.samples)]
    sets += [(f"{size}_draw{k}", size, k, InferenceSet.from_transitions(transitions, n=size, seed=k))
             for size, count in draws for k in range(count)]

    def unit(z: np.ndarray) -> np.ndarray:
        return z / np.linalg.norm(z)

    shipped_z = {t: unit(reward_z(bfm, bfm.samples, t)) for t in tasks}
    rows = []
    for name, size, draw_seed, samples in sets:
        results = evaluate_zero_shot(bfm, bfm.metadata.domain, tasks, samples, episodes=episodes, seed=seed)
        row = {"samples": name, "size": size, "draw_seed": draw_seed,
               "tasks": {t: round(r.mean, 1) for t, r in results.items()},
               "mean_over_tasks": round(float(np.mean([r.mean for r in results.values()])), 1),
               # how far this draw's latent is from the shipped samples' one
               "cosine_to_shipped_z": {t: round(float(unit(reward_z(bfm, samples, t)) @ shipped_z[t]), 5)
                                       for t in tasks}}
        rows.append(row)
        print(model, name, row["mean_over_tasks"], row["tasks"], flush=True)
    by_size: dict[int, list[float]] = {}
    for row in rows[1:]:
        by_size.setdefault(row["size"], []).append(row["mean_over_tasks"])
    summary = {str(size): {"draws": len(v), "mean": round(float(np.mean(v)), 1),
                           "min": min(v), "max": max(v)} for size, v in by_size.items()}
    return {"model": model, "dataset": datasets, "episodes": episodes, "seed": seed, "rows": rows,
            "by_size": summary}


def compare_variants(dataset: list[str], updates: int, episodes: int, seed: int, workdir: Path,
                     config: str, base: dict | None = None) -> list[dict]:
    """Each of :data:`VARIANTS` on top of ``config`` with the ``base`` overrides."""
    from bfm_gym.pretraining import pretrain

    rows = []
    for name, overrides in VARIANTS.items():
        start = time.perf_counter()
        out = pretrain(dataset, workdir / name, config=config, overrides={**(base or {}), **overrides},
                       updates=updates, seed=seed, eval_every=0, progress=False)
        row = evaluate_model(str(out), episodes, seed)
        row.update(variant=name, overrides=overrides, base_overrides=base or {},
                   train_seconds=round(time.perf_counter() - start, 1))
        rows.append(row)
        print(name, row["mean_over_tasks"], flush=True)
    return rows


def compare_families(dataset: list[str], updates: int, episodes: int, seed: int, workdir: Path,
                     config: str) -> list[dict]:
    from bfm_gym.pretraining import pretrain

    rows = []
    for family in ("fb", "hilp"):
        start = time.perf_counter()
        out = pretrain(dataset, workdir / family, config=config, family=family, updates=updates,
                       seed=seed, eval_every=0, progress=False)
        row = evaluate_model(str(out), episodes, seed)
        row.update(train_seconds=round(time.perf_counter() - start, 1), updates=updates)
        rows.append(row)
        print(family, row["mean_over_tasks"], flush=True)
    return rows


SAC_FLOOR = 0.7
"""Zero-shot return / SAC return, median over an env's floor tasks, must reach this."""


def gym_env_tasks(env_id: str) -> tuple[list[str], list[str]]:
    """``(floor tasks, reported tasks)`` of a Gymnasium id with shipped tasks (registering
    them). ``native`` is reported but not in the floor: Reacher's own reward is negative, so
    a ratio of returns means nothing there."""
    if env_id == "Reacher-v5":
        from bfm_gym.envs.reacher_tasks import register_reacher_tasks

        floor = register_reacher_tasks()
        return floor, [*floor, "native"]
    raise SystemExit(f"--env {env_id}: no floor tasks defined for it (known: Reacher-v5).")


def sac_task(env_id: str, task: str, steps: int, seed: int, episodes: int, eval_seed: int,
             workdir: Path, threads: int, chunk: int = 5000) -> dict:
    """Trains SB3 SAC (default hyperparameters) on one task for ``steps`` env steps and
    evaluates it deterministically; the result is cached in ``workdir/<task>.json``.

    Training is saved every ``chunk`` steps (agent and replay buffer in ``workdir/<task>/``)
    and an interrupted run resumes from there. Reacher episodes are 50 steps and never
    terminate, so with ``chunk`` a multiple of 50 a resume starts at an episode boundary; only
    the random-number streams differ from an uninterrupted run.
    """
    import json

    import numpy as np
    import torch
    from stable_baselines3 import SAC

    from bfm_gym.envs.gym_env import make_task_env
    from bfm_gym.evaluation.rollout import rollout_returns
    from bfm_gym.evaluation.zero_shot import summarize
    from bfm_gym.utils.io import write_json_atomic

    cache = workdir / f"{task}.json"
    if cache.is_file():
        row = json.loads(cache.read_text())
        if (row["steps"], row["seed"], row["episodes"], row["eval_seed"]) == (steps, seed, episodes, eval_seed):
            return row
    torch.set_num_threads(threads)
    run = workdir / task
    run.mkdir(parents=True, exist_ok=True)
    progress_file = run / "progress.json"
    progress = json.loads(progress_file.read_text()) if progress_file.is_file() else {}
    if progress.get("steps_total") not in (None, steps) or progress.get("seed") not in (None, seed):
        raise SystemExit(f"{run} holds a SAC run of other settings ({progress}); remove it or use another --workdir.")
    env = make_task_env(env_id, task)
    if progress.get("steps_done"):
        agent = SAC.load(run / "agent.zip", env=env, device="cpu")
        agent.load_replay_buffer(run / "replay.pkl")
    else:
        agent = SAC("MlpPolicy", env, seed=seed, device="cpu", verbose=0)
        progress = {"steps_total": steps, "seed": seed, "steps_done": 0, "train_seconds": 0.0, "resumes": 0}
    if progress["steps_done"]:
        progress["resumes"] += 1
    while progress["steps_done"] < steps:
        n = min(chunk, steps - progress["steps_done"])
        start = time.perf_counter()
        agent.learn(total_timesteps=n, reset_num_timesteps=progress["steps_done"] == 0)
        progress["train_seconds"] += time.perf_counter() - start
        progress["steps_done"] += n
        agent.save(run / "agent.zip")
        agent.save_replay_buffer(run / "replay.pkl")
        write_json_atomic(progress_file, progress)
        print(f"SAC {task}: {progress['steps_done']}/{steps} steps, {progress['train_seconds']:.0f} s", flush=True)
    env.close()

    def policy(obs: np.ndarray) -> np.ndarray:
        return agent.predict(obs, deterministic=True)[0]

    returns = rollout_returns(lambda: make_task_env(env_id, task), policy, episodes, eval_seed)
    r = summarize(task, returns, eval_seed)
    row = {"task": task, "steps": steps, "seed": seed, "episodes": episodes, "eval_seed": eval_seed,
           "mean": r.mean, "ci95": list(r.ci95), "returns": r.returns,
           "train_seconds": round(progress["train_seconds"], 1), "resumes": progress["resumes"],
           "threads": threads, "hyperparameters": "stable_baselines3 SAC('MlpPolicy') defaults",
           "stable_baselines3": __import__("stable_baselines3").__version__}
    write_json_atomic(cache, row)
    return row


def random_returns(env_id: str, task: str, episodes: int, eval_seed: int) -> list[float]:
    """Returns of uniform random actions on the same episodes (for scale)."""
    import numpy as np

    from bfm_gym.envs.gym_env import make_task_env
    from bfm_gym.evaluation.rollout import rollout_returns

    rng = np.random.default_rng(eval_seed)
    return [round(float(v), 3) for v in rollout_returns(
        lambda: make_task_env(env_id, task), lambda o: rng.uniform(-1, 1, (len(o), 2)), episodes, eval_seed)]


def cached_sac(workdir: Path, task: str, args: argparse.Namespace) -> dict | None:
    """The finished SAC result of ``task`` in ``workdir`` for these settings, else None."""
    import json

    cache = workdir / f"{task}.json"
    if not cache.is_file():
        return None
    row = json.loads(cache.read_text())
    same = (row["steps"], row["seed"], row["episodes"], row["eval_seed"]) == (
        args.sac_steps, args.seed, args.episodes, args.eval_seed)
    return row if same else None


def against_sac(env_id: str, model: str, args: argparse.Namespace) -> dict:
    """Zero-shot returns of ``model`` and SAC returns on the env's tasks, and the floor.

    With ``--no-sac-training`` a task whose SAC run has not finished (in ``--workdir``) gets
    ``sac: null`` and the floor is only decided once every floor task has its SAC number.
    """
    import numpy as np

    import bfm_gym
    from bfm_gym.evaluation.zero_shot import evaluate_zero_shot

    floor_tasks, tasks = gym_env_tasks(env_id)
    bfm = bfm_gym.load(model)
    if bfm.metadata.domain != env_id:
        raise SystemExit(f"--models {model} was trained on {bfm.metadata.domain}, not {env_id}.")
    start = time.perf_counter()
    zs = evaluate_zero_shot(bfm, env_id, tasks, bfm.samples, episodes=args.episodes, seed=args.eval_seed)
    zs_seconds = time.perf_counter() - start
    rows = {}
    for task in tasks:
        if args.no_sac_training:
            sac = cached_sac(Path(args.workdir), task, args)
        else:
            sac = sac_task(env_id, task, args.sac_steps, args.seed, args.episodes, args.eval_seed,
                           Path(args.workdir), args.threads)
        z = zs[task]
        ratio = round(z.mean / sac["mean"], 4) if sac is not None and task in floor_tasks else None
        rows[task] = {
            "zero_shot": {"mean": z.mean, "ci95": list(z.ci95), "returns": z.returns, "z": z.extra["z"]},
            "sac": sac,
            "random_actions": random_returns(env_id, task, args.episodes, args.eval_seed),
            "ratio": ratio,
        }
        print(f"{task}: zero-shot {z.mean:.1f}, SAC {sac['mean'] if sac else float('nan'):.1f}", flush=True)
    ratios = [rows[t]["ratio"] for t in floor_tasks if rows[t]["ratio"] is not None]
    complete = len(ratios) == len(floor_tasks)
    median = float(np.median(ratios)) if ratios else None
    return {
        "env": env_id, "model": model, "training_steps": bfm.metadata.training_steps,
        "episodes_per_task": args.episodes,
        "eval_seeds": f"{args.eval_seed} .. {args.eval_seed + args.episodes - 1}",
        "sac_steps": args.sac_steps, "sac_seed": args.seed, "floor_tasks": floor_tasks,
        "floor": f"median over floor tasks of zero-shot / SAC >= {SAC_FLOOR}",
        "sac_measured_on": [t for t in floor_tasks if rows[t]["sac"] is not None],
        "median_ratio": None if median is None else round(median, 4),
        "floor_met": bool(median >= SAC_FLOOR) if complete and median is not None else None,
        "zero_shot_eval_seconds": round(zs_seconds, 1),
        "sac_train_seconds": round(sum(r["sac"]["train_seconds"] for r in rows.values() if r["sac"]), 1),
        "tasks": rows,
    }


def side_by_side(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """``{domain: {task: {"model (family)": mean}}}`` plus a ``mean`` row per domain."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        label = f"{row['model']} ({str(row.get('family') or '?').removeprefix('bfm_gym.')})"
        domain = table.setdefault(row["domain"], {})
        for task, result in row["tasks"].items():
            domain.setdefault(task, {})[label] = round(result["mean"], 1)
        domain.setdefault("mean", {})[label] = row["mean_over_tasks"]
    return table


def print_side_by_side(table: dict[str, dict[str, dict[str, float]]]) -> None:
    for domain, tasks in table.items():
        labels = list(next(iter(tasks.values())))
        print(f"\n{domain}\n| task | " + " | ".join(labels) + " |")
        print("|---" * (len(labels) + 1) + "|")
        for task, values in tasks.items():
            print(f"| {task} | " + " | ".join(f"{values.get(m, float('nan')):.1f}" for m in labels) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare-variants", action="store_true")
    parser.add_argument("--compare-families", action="store_true")
    parser.add_argument("--dataset", action="append", default=None,
                        help="Dataset folder; repeat to mix datasets of one domain.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="With --compare-variants: a config override every variant shares.")
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--workdir", default="runs/zero_shot_variants")
    parser.add_argument("--out", default="benchmarks/results/zero_shot.json")
    parser.add_argument("--env", default=None, help="A Gymnasium id: compare --models with SAC.")
    parser.add_argument("--sac-steps", type=int, default=50_000)
    parser.add_argument("--eval-seed", type=int, default=1000,
                        help="With --env: episode k of each evaluation resets with this + k.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--inference-draws", default=None, metavar="SIZExDRAWS,...",
                        help="With --models and --dataset: zero-shot with fresh inference samples, "
                             "e.g. 10000x3,50000x2.")
    parser.add_argument("--sac-only", action="store_true",
                        help="With --env: only train and evaluate SAC on the tasks (no model; "
                             "fills --workdir for a later run with --models).")
    parser.add_argument("--no-sac-training", action="store_true",
                        help="With --env: use only the SAC runs already finished in --workdir.")
    args = parser.parse_args()
    try:
        base = parse_set(args.set)  # checked before any model is evaluated
    except UserError as exc:
        parser.error(str(exc))
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.env and args.sac_only:
        _, tasks = gym_env_tasks(args.env)
        for task in tasks:
            row = sac_task(args.env, task, args.sac_steps, args.seed, args.episodes, args.eval_seed,
                           Path(args.workdir), args.threads)
            print(f"SAC {task}: {row['mean']:.1f} over {args.episodes} episodes", flush=True)
        return
    if args.env:
        if not args.models:
            parser.error("--env needs --models (a model of that env)")
        report = {"benchmark": "zero_shot_vs_sac", "command": command(),
                  "machine": machine(cpu=f"{cpu_model()} ({cpu_kind()})", threads=args.threads, load=os.getloadavg()),
                  "against_sac": [against_sac(args.env, m, args) for m in args.models.split(",")]}
        report["wall_seconds"] = round(time.perf_counter() - start, 1)
        for row in report["against_sac"]:
            print(row["model"], "median zero-shot/SAC", row["median_ratio"], "floor met:", row["floor_met"])
        write_report(args.out, report)
        return
    if args.inference_draws:
        if not (args.models and args.dataset):
            parser.error("--inference-draws needs --models and --dataset")
        try:
            draws = [(int(a), int(b)) for a, b in (d.split("x") for d in args.inference_draws.split(","))]
        except ValueError:
            parser.error(f"--inference-draws takes SIZExDRAWS items, e.g. 10000x3,50000x2; got {args.inference_draws!r}")
        report = {"benchmark": "zero_shot_inference_draws", "command": command(),
                  "machine": machine(threads=args.threads),
                  "models": [inference_draws(m, args.dataset, draws, args.episodes, args.seed)
                             for m in args.models.split(",") if m]}
        report["wall_seconds"] = round(time.perf_counter() - start, 1)
        write_report(args.out, report)
        return
    report = {
        "benchmark": "zero_shot",
        "command": command(),
        "machine": machine(),
        "models": [evaluate_model(m, args.episodes, args.seed) for m in args.models.split(",") if m],
    }
    if args.compare_variants:
        if not args.dataset:
            parser.error("--compare-variants needs --dataset")
        report["variants"] = compare_variants(args.dataset, args.updates, args.episodes, args.seed,
                                              Path(args.workdir), args.config, base)
    if args.compare_families:
        if not args.dataset:
            parser.error("--compare-families needs --dataset")
        report["families"] = compare_families(args.dataset, args.updates, args.episodes, args.seed,
                                              Path(args.workdir), args.config)
    for row in report["models"]:
        print(row["model"], row["mean_over_tasks"], row.get("floor_met"))
    rows = report["models"] + report.get("families", [])
    if len(rows) > 1:
        report["side_by_side"] = side_by_side(rows)
        print_side_by_side(report["side_by_side"])
    write_report(args.out, report)


if __name__ == "__main__":
    main()
