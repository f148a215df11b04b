"""Zero-shot report of a model on every task of its domain, and its model card."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np



def __getattr__(name: str) -> Any:
    if name == "FLOORS":  # read-only view of the domains' floors (``Domain.floor``)
        from bfm_gym.envs import DOMAINS

        return {n: d.floor for n, d in DOMAINS.items() if d.floor is not None}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def benchmark_tasks(domain: str) -> list[str]:
    """The tasks a zero-shot report averages: the domain's benchmark set (``Domain.tasks``),
    or for a domain without one (or a Gymnasium id) every registered task but ``test_*``."""
    from bfm_gym.envs import DOMAINS, list_tasks

    record = DOMAINS.get(domain)
    if record is not None and record.tasks:
        return sorted(record.tasks)
    return [t for t in list_tasks(domain) if not t.startswith("test_")]


def zero_shot_report(model: str | os.PathLike[str], episodes: int = 10, seed: int = 0) -> dict[str, Any]:
    """Evaluates a model on the benchmark tasks of its domain (:func:`benchmark_tasks`) with its
    shipped inference samples, against the domain's floor (``Domain.floor``).

    Returns:
        ``{"model", "domain", "training_steps", "tasks": {task: {mean, ci95, returns}},
        "mean_over_tasks", "floor", "floor_met", "eval_seconds", "machine"}``; ``machine``
        (:func:`~bfm_gym.utils.machine.machine_summary`) says where the returns were measured.
    """
    from bfm_gym.envs import DOMAINS
    from bfm_gym.evaluation.zero_shot import INFERENCE_FILE, evaluate_zero_shot
    from bfm_gym.pretrained import load
    from bfm_gym.utils.machine import machine_summary

    bfm = load(model)  # any registered family
    domain = bfm.metadata.domain
    tasks = benchmark_tasks(domain)
    start = time.perf_counter()
    samples = bfm.samples
    if samples is None:
        raise ValueError(f"Model {model} ships no inference samples ({INFERENCE_FILE}), so no task's z "
                         "can be inferred; export it with `bfm-gym export` or `bfm-gym pretrain`.")
    table: dict[str, dict[str, Any]] = {}
    for task in tasks:
        try:
            r = evaluate_zero_shot(bfm, domain, [task], samples, episodes=episodes, seed=seed)[task]
            table[task] = {"mean": r.mean, "ci95": list(r.ci95), "returns": r.returns}
        except ValueError as exc:  # no reward in the samples: z undefined, counts as 0
            table[task] = {"mean": 0.0, "ci95": [0.0, 0.0], "returns": [], "error": str(exc)}
    mean = float(np.mean([row["mean"] for row in table.values()]))
    row: dict[str, Any] = {
        "model": str(model),
        "family": getattr(bfm, "family", None),
        "domain": domain,
        "training_steps": bfm.metadata.training_steps,
        "episodes_per_task": episodes,
        "seed": seed,
        "tasks": table,
        "mean_over_tasks": round(mean, 2),
        "eval_seconds": round(time.perf_counter() - start, 1),
        "machine": machine_summary(),
    }
    floor = DOMAINS[domain].floor if domain in DOMAINS else None
    if floor is not None:
        row["floor"] = floor
        row["floor_met"] = bool(mean >= floor)
    return row


def gradient_check_report(model: str | os.PathLike[str], seeds: int = 10, seed: int = 0,
                          degrees: tuple[float, ...] = (5.0, 10.0)) -> dict[str, Any]:
    """:func:`~bfm_gym.evaluation.gradient_check.gradient_check` on every benchmark task of a
    model (start states ``2000 .. 2000 + seeds - 1``): ``{task: GradientCheck as a dict}``. A
    task whose reward never appears in the inference samples has no weights and is left out."""
    from bfm_gym.envs.gym_env import env_info_of, make_task_env
    from bfm_gym.evaluation.gradient_check import gradient_check
    from bfm_gym.models.inference import reward_z
    from bfm_gym.pretrained import load

    bfm = load(model)
    domain = bfm.metadata.domain
    rows: dict[str, Any] = {}
    for task in benchmark_tasks(domain):
        try:
            weights = reward_z(bfm, task=task, project=False)
        except ValueError:  # no reward in the samples: no zero-shot latent to turn
            continue
        rows[task] = gradient_check(
            bfm, lambda task=task: make_task_env(domain, task, env_info=env_info_of(bfm)), weights,
            task=task, degrees=degrees, seeds=range(2000, 2000 + seeds), seed=seed).to_dict()
    return rows


def _over_random(row: dict[str, Any]) -> str:
    if row.get("gain_over_random") is None:
        return "not run"
    lo, hi = row["gain_over_random_ci95"]
    return (f"{row['versus_random']}: {100 * row['gain_over_random']:+.1f} % "
            f"({100 * lo:+.1f} to {100 * hi:+.1f})")


def _gradient_section(rows: dict[str, Any]) -> str:
    if not rows:
        return ""
    first = next(iter(rows.values()))
    k = int(np.argmin(first["degrees"]))
    deg = first["degrees"][k]
    lines = "\n".join(
        f"| {t} | {100 * r['f_slope_per_degree']:.2f} % | {100 * r['f_predicted_gain'][k]:+.1f} % | "
        f"{100 * r['gain'][k]:+.1f} % ({100 * r['gain_ci95'][k][0]:+.1f} to {100 * r['gain_ci95'][k][1]:+.1f}) | "
        f"{r['verdict']} | {_over_random(r)} |"
        for t, r in rows.items()
    )
    return f"""
## Does F's value gradient lead to better policies?

For a perfect model F's value of a task is highest at the task's zero-shot latent, so its
gradient there is zero. Per task: F's slope at the zero-shot latent, what F predicts for a
{deg:g} degree turn along its gradient, and what {len(first['seeds'])} paired episodes measured
(95 % interval). "downhill": a gradient adapter (ReLA) that climbs F's value loses on this
task; latent search on real returns (LoLA) does not depend on it. The last column compares
the turn along F's gradient with turns along random directions that change the policy's
actions as much (the zero-shot latent may sit on a peak every turn descends): "better" means
F's direction is informative.
Command: `bfm-gym card --gradient-check`.

| task | F's predicted gain per degree | F's predicted gain, {deg:g} degrees | measured gain | verdict | against random turns |
|---|---|---|---|---|---|
{lines}
"""


def write_model_card(model_dir: str | os.PathLike[str], report: dict[str, Any], *,
                     command: str, dataset_command: str, wall_time: str, notes: str = "") -> Path:
    """Writes ``MODEL_CARD.md`` and ``zero_shot.json`` into a model folder."""
    from bfm_gym.utils.io import write_json_atomic, write_text_atomic

    folder = Path(model_dir)
    cfg = json.loads((folder / "config.json").read_text())
    write_json_atomic(folder / "zero_shot.json", report, sort_keys=True)
    c = cfg["model"]["config"]
    if cfg.get("format") == "bfm_gym.hilp":
        kind = "HILP (Hilbert foundation policy) model"
        arch = (f"z_dim {c['z_dim']}, phi hidden {c['phi_hidden_dim']}x{c['phi_hidden_layers']}, "
                f"psi/actor hidden {c['sf_hidden_dim']}/{c['actor_hidden_dim']}, batch {c['batch_size']}, "
                f"gamma {c['gamma']}, hilp_gamma {c['hilp_gamma']}, expectile {c['expectile']}")
    else:
        kind = "Forward-Backward model"
        arch = (f"z_dim {c['z_dim']}, F/actor hidden {c['f_hidden_dim']}/{c['actor_hidden_dim']}, "
                f"B hidden {c['b_hidden_dim']}x{c['b_hidden_layers']}, batch {c['batch_size']}, "
                f"gamma {c['gamma']}, ar_blocks {c['ar_blocks']}, actor_loss {c['actor_loss']}")
    rows = "\n".join(
        f"| {t} | {v['mean']:.1f} | {v['ci95'][0]:.1f} to {v['ci95'][1]:.1f} |"
        for t, v in report["tasks"].items()
    )
    floor = ""
    if "floor" in report:
        floor = (f"\nQuality floor: mean over tasks >= {report['floor']:.0f}: "
                 f"**{'met' if report['floor_met'] else 'NOT met'}** ({report['mean_over_tasks']:.1f}).\n")
    measured = ""
    if "machine" in report:
        m = report["machine"]
        measured = (f"Measured on {m['cpu_model']} ({m['cpu_kind']}; torch {m['torch']}, MuJoCo {m['mujoco']}). "
                    "Rollouts amplify float differences, so another CPU, MuJoCo build or way of computing\n"
                    "an activation moves returns a little (the maze model's mean: 601.6 on the machine that\n"
                    "shipped it, 589.0 on another with the same code, 601.8 there once tanh was computed\n"
                    "by torch.tanh instead of through a sigmoid).\n")
    text = f"""# bfm_gym model: {report['domain']}

{kind} trained by this project's own commands.

- Training command: `{command}`
- Dataset: `{dataset_command}`
- Training updates: {report['training_steps']}
- Hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores ({platform.platform()}); wall time {wall_time}
- Architecture: {arch} (all fields in `config.json`)
- Dataset id and hash: {cfg.get('dataset', {}).get('id')}, {cfg.get('dataset', {}).get('hash')}

## Zero-shot returns

{report['episodes_per_task']} episodes per task, seed {report['seed']}, deterministic policy,
z inferred from this folder's `inference_samples.safetensors`.
Command: `bfm-gym card {folder}` (or `python benchmarks/zero_shot.py --models {folder}`).
{measured}
| task | mean return | 95% CI |
|---|---|---|
{rows}
{floor}{_gradient_section(report.get("gradient_check", {}))}
{notes}
"""
    return write_text_atomic(folder / "MODEL_CARD.md", text)
