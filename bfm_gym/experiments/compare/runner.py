"""The :func:`compare` entry point: plan the grid, skip finished cells, run the others
on an executor, then score and write the outputs (the module docstring of
:mod:`bfm_gym.experiments.compare` describes the protocol)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from bfm_gym.errors import check_count, check_out_dir, check_own_folder
from bfm_gym.experiments.compare.executors import execute_local, execute_ray, forwarded_env, import_ray
from bfm_gym.experiments.compare.outputs import write_outputs
from bfm_gym.experiments.compare.scoring import select_settings
from bfm_gym.experiments.compare.spec import CompareError, CompareResult, CompareSpec, cell_name, check_folder, plan
from bfm_gym.utils.io import write_json_atomic

logger = logging.getLogger("bfm_gym.experiments.compare")

__all__ = ["compare"]


def compare(
    model: str | os.PathLike[str],
    tasks: str | Sequence[str],
    adapters: str | Sequence[str],
    *,
    out: str | os.PathLike[str],
    seeds: int | Sequence[int] = 5,
    episodes: int = 50,
    workers: int | None = None,
    executor: Literal["local", "ray"] = "local",
    address: str | None = None,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    max_episode_steps: int | None = None,
    max_labels: int | None = None,
    oracle: Mapping[str, float] | None = None,
    checkpoints: Sequence[int] | None = None,
    bootstrap_reps: int = 2000,
    score_window: int = 1,
    eval_episodes: int = 5,
    eval_every: int = 0,
    tune: Mapping[str, Sequence[Any]] | None = None,
    select_seeds: Sequence[int] | None = None,
    progress: bool = True,
    command: str | None = None,
) -> CompareResult:
    """Runs every (adapter, task, seed) cell at equal budgets and aggregates the results.

    Args:
        model: Shipped model name or model folder (workers load it by this name).
        tasks: Tasks of the model's domain: ``"walker-run,walker-walk"`` or a list.
        adapters: Registered adapter names (plugins included), comma-separated or a list.
        out: Output folder (resumable: rerun to continue).
        seeds: Number of seeds (``0..n-1``) or the seeds themselves.
        episodes: Episodes per cell; the env-step budget is ``episodes x episode length``.
        workers: Parallel cells (default ``min(cpu count, cells)``; 1: in this process).
        executor: ``"local"`` process pool or ``"ray"`` (one task per cell).
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None starts a
            local Ray with ``workers`` CPUs (or uses one already initialised).
        config: Adapter -> config fields (``{"opti": {"beta": 0.2}}``).
        max_episode_steps: Cap episode length (quick runs).
        max_labels: Cap on online reward labels per cell (default: the env-step budget).
        oracle: Task -> oracle return (default: the zero-shot level, OpTI-BFM's oracle).
        checkpoints: Budgets in episodes for the aggregates (default 1, 10, 20, 50 below
            ``episodes``, and ``episodes``).
        bootstrap_reps: Bootstrap replicates for every interval.
        score_window: Without paired evaluation, a cell's score at a budget is the mean
            return of its last ``score_window`` training episodes that ended within it.
        eval_episodes: Fixed start states per evaluation point, shared by every adapter of
            a seed and the zero-shot level (0: score training returns, the former protocol).
        eval_every: Extra evaluation points every K episodes' worth of budget, for the
            curves (0: at the checkpoints only).
        tune: The tuning budget: ``{"lr": [1e-4, 3e-4, 1e-3]}`` gives every adapter with a
            learning rate a grid over it, ``{"opti.beta": [0.1, 1, 10]}`` one adapter a grid
            over any field; every setting runs at the same budget and each adapter is
            reported at its best (:mod:`bfm_gym.experiments.compare.tuning`).
        select_seeds: Seeds on which the settings are chosen, none of ``seeds`` (default:
            choose on ``seeds`` themselves; see the selection rule in ``.tuning``).
        progress: Progress bar over all cells (finished episodes / total).
        command: The command line to record in ``report.md`` (default: the equivalent
            ``bfm-gym compare`` call).

    Returns:
        The :class:`CompareResult`; everything is also written to ``out``.

    Raises:
        ValueError: Bad input (unknown names, invalid config, unequal budgets, an
            ``out`` holding another budget), before any cell runs.
        ImportError: ``executor="ray"`` without Ray installed.
        CompareError: Some cells failed (the others are kept; rerun to resume).
    """
    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be 'local' or 'ray'; got {executor!r}.")
    if executor == "ray":
        import_ray()
    check_count("workers", workers, allow_none=True)
    check_count("bootstrap_reps", bootstrap_reps)
    check_count("score_window", score_window)
    check_count("episodes", episodes)
    check_count("max_episode_steps", max_episode_steps, allow_none=True)
    check_count("max_labels", max_labels, allow_none=True)
    check_count("eval_episodes", eval_episodes, minimum=0)
    check_count("eval_every", eval_every, minimum=0)
    check_out_dir(out, "out")
    check_own_folder(out, ["compare.json"], "comparison folder",
                     consequence="compare would write its cells and reports among its files")
    spec = plan(model, tasks, adapters, seeds=seeds, episodes=episodes, config=config,
                max_episode_steps=max_episode_steps, max_labels=max_labels, oracle=oracle,
                checkpoints=checkpoints, eval_episodes=eval_episodes, eval_every=eval_every,
                tune=tune, select_seeds=select_seeds)
    folder = Path(out)
    check_folder(folder, spec)
    (folder / "cells").mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "compare.json", spec.to_dict(), newline=False)

    from tqdm.auto import tqdm

    first = spec.first_cells()
    # with selection seeds, the chosen settings then run on the reported seeds
    second_n = len(spec.tune) * len(spec.tasks) * len(spec.seeds) if spec.select_seeds else 0
    # progress in episodes' worth of env-step budget (lookahead steps count, so a LoLA cell
    # spends its budget in fewer real episodes)
    bar = tqdm(total=(len(first) + second_n) * spec.episodes, unit="ep", desc="compare", disable=not progress)
    done: dict[str, list[dict[str, Any]]] = {}
    ran: set[str] = set()
    start = time.perf_counter()
    _run_cells(first, spec, folder, done, ran, workers, executor, address, bar)
    chosen: dict[str, str] = {}
    if spec.tune:
        chosen = select_settings(folder, spec, done)
        write_json_atomic(folder / "compare.json", {**spec.to_dict(), "selected": {
            a: {"setting": spec.setting(v), "variant": v} for a, v in chosen.items()}}, newline=False)
        second = [c for c in spec.chosen_cells(chosen) if cell_name(*c) not in done]
        _run_cells(second, spec, folder, done, ran, workers, executor, address, bar)
    bar.close()
    logger.info("compare: cells ran in %.1f s", time.perf_counter() - start)
    return write_outputs(folder, spec, done, ran, bootstrap_reps,
                         command or _equivalent_command(spec, folder), score_window, chosen)


def _run_cells(cells: list[tuple[str, str, int]], spec: CompareSpec, folder: Path,
               done: dict[str, list[dict[str, Any]]], ran: set[str], workers: int | None, executor: str,
               address: str | None, bar: Any) -> None:
    """Runs the cells ``(variant, task, seed)`` not finished yet; their records go into ``done``.

    Raises:
        CompareError: Some cells failed (the others' records are kept).
    """
    jobs: list[dict[str, Any]] = []
    for variant, task, seed in cells:
        name = cell_name(variant, task, seed)
        records = _finished(folder / "cells" / name, spec)
        if records is not None:
            done[name] = records
            bar.update(spec.episodes)
            continue
        jobs.append({"name": name, "model": spec.model, "task": task, "adapter": variant.split("@", 1)[0],
                     "seed": seed, "folder": str(folder / "cells" / name), "episodes": spec.episodes,
                     "config": spec.configs[variant], "max_episode_steps": spec.max_episode_steps,
                     "budget_steps": spec.budget_steps, "budget_labels": spec.budget_labels,
                     "oracle": spec.oracle.get(task), "env": forwarded_env(),
                     "eval_episodes": spec.eval_episodes, "eval_steps": spec.eval_steps()})
    n_workers = workers or max(1, min(os.cpu_count() or 1, len(jobs) or 1))
    logger.info("compare: %d cells, %d finished, %d to run on %s (%d workers)",
                len(cells), len(cells) - len(jobs), len(jobs), executor, n_workers)
    if not jobs:
        return
    base = bar.n

    def poll(finished: Mapping[str, Any]) -> None:
        count = 0
        for job in jobs:
            if job["name"] in finished and not isinstance(finished[job["name"]], BaseException):
                count += spec.episodes
            else:
                steps = _steps_spent(Path(job["folder"]) / "records.jsonl")
                count += min(spec.episodes, steps // spec.episode_length)
        bar.update(base + count - bar.n)

    if executor == "local":
        results = execute_local(jobs, n_workers, poll)
    else:
        results = execute_ray(jobs, n_workers, address, poll)
    failed = {k: v for k, v in results.items() if isinstance(v, BaseException)}
    if failed:
        lines = [f"{k}: {type(v).__name__}: {v}" for k, v in sorted(failed.items())]
        raise CompareError(f"{len(failed)} of {len(cells)} cells failed (finished episodes are kept; "
                           "rerun the same command to resume):\n  " + "\n  ".join(lines))
    for name, res in results.items():
        done[name] = res["records"]
        ran.add(name)


def _steps_spent(path: Path) -> int:
    """Env steps of a cell's last finished episode (0 before the first)."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["env_steps"])
        except (ValueError, KeyError):  # a line being written
            continue
    return 0


def _equivalent_command(spec: CompareSpec, out: Path) -> str:
    args = ["bfm-gym", "compare", "--model", spec.model, "--tasks", ",".join(spec.tasks),
            "--adapters", ",".join(spec.adapters), "--seeds", str(len(spec.seeds)),
            "--episodes", str(spec.episodes), "--out", str(out)]
    if spec.seeds != tuple(range(len(spec.seeds))):
        args[args.index("--seeds") + 1] = ",".join(map(str, spec.seeds))
    if spec.max_episode_steps is not None:
        args += ["--max-episode-steps", str(spec.max_episode_steps)]
    if spec.budget_labels != spec.budget_steps:
        args += ["--max-labels", str(spec.budget_labels)]
    if spec.eval_episodes != 5:
        args += ["--eval-episodes", str(spec.eval_episodes)]
    if spec.eval_every:
        args += ["--eval-every", str(spec.eval_every)]
    from bfm_gym.plugins import load_plugins

    registry = load_plugins().adapters
    for adapter in spec.adapters:
        defaults = json.loads(json.dumps(registry[adapter][0].config_class.from_dict(None).to_dict()))
        tuned = spec.tune.get(adapter, {}).get("key")
        for key, value in spec.configs[spec.variants(adapter)[0]].items():
            if key != tuned and defaults.get(key) != value:
                args += ["--set", f"{adapter}.{key}={json.dumps(value)}"]
        if tuned:
            args += ["--tune", f"{adapter}.{tuned}=" + ",".join(
                v if isinstance(v, str) else json.dumps(v) for v in spec.tune[adapter]["values"])]
    if spec.select_seeds:
        args += ["--select-seeds", ",".join(map(str, spec.select_seeds))]
    for task, value in spec.oracle.items():
        args += ["--oracle", f"{task}={value}"]
    return shlex.join(args)



def _finished(folder: Path, spec: CompareSpec) -> list[dict[str, Any]] | None:
    """The records of a finished cell with the requested budget, else None."""
    try:
        run = json.loads((folder / "run.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
        records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines() if line]
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if (run.get("budget_steps"), run.get("budget_labels"), run.get("max_episode_steps")) != (
            spec.budget_steps, spec.budget_labels, spec.max_episode_steps):
        return None
    if summary.get("episodes") != len(records):
        return None
    last = records[-1] if records else {"env_steps": 0, "labels_used": 0}
    if (len(records) >= spec.episodes or last["env_steps"] >= spec.budget_steps
            or last["labels_used"] >= spec.budget_labels):
        return records
    return None
