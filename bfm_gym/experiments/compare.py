"""``compare()`` / ``bfm-gym compare``: adapters x tasks x seeds at equal budgets.

Every *cell* (adapter, task, seed) is one :func:`~bfm_gym.experiments.adapt.adapt`
run in its own resumable folder. Output folder::

    compare.json                 the grid and its budgets (a rerun must keep the budget)
    cells/{adapter}__{task}__s{seed}/   adapt's run folder of each cell
    results.csv (.parquet)       one row per (adapter, task, seed, episode)
    cells.json                   per cell: budget given and used, status
    aggregates.json, .csv        IQM / mean with stratified-bootstrap 95 % CIs
    curve_{task}.png, aggregate.png, profile.png, report.md

**Equal budgets.** Every cell gets the same *env-step budget* ``episodes x episode
length`` (the episode length is ``max_episode_steps`` or 1000) and the same cap on
*online reward labels* (``max_labels``, default: the env-step budget, i.e. one label
per env step). Both are passed to ``adapt`` (``budget_steps``, ``budget_labels``),
which counts lookahead / state-reset rollouts (``sim_steps``) as env steps and stops
before an episode once either budget is spent; the episode that crosses it still
finishes, so a cell may end slightly over budget (recorded in ``cells.json``).
Scores at a budget only use episodes that ended within it. Every cell resets episode
``k`` with ``adapt.episode_seed(seed, k)``, so all adapters of one seed see the same
initial states. Dataset labels
(the model's shipped inference samples, used by e.g. ``zero-shot`` and OpTI's warm
start) are a property of the model, the same for every adapter, and not counted.

*Unequal* means: two cells of one task that could spend a different number of env
steps or online labels, or run on a different episode length. ``compare`` refuses
what would cause that: per-adapter ``episodes``/``budget_steps``/``budget_labels``/
``max_labels``/``max_episode_steps``/``seed`` settings in ``--set``, and reusing an
``out`` folder made with another model or budget. (Adapter config fields are free;
an adapter must count every env step it takes, see :class:`~bfm_gym.adapters.base.Adapter`.)

**Paired evaluation (the default).** A cell's score is not the return of a training
episode (each starts from its own state and includes the adapter's exploration; in the
maze the start room decides most of it) but an *evaluation point*: ``eval_episodes``
episodes (default 5) from fixed start states, z frozen at the adapter's estimate,
deterministic policy (see :mod:`bfm_gym.experiments.adapt`). The start states are
``adapt.evaluation_seeds(seed, n)``: the same for every adapter of one seed and for the
zero-shot level, so scores are paired start by start. Each cell takes a point before
every checkpoint budget (and every ``eval_every`` episodes' worth of budget, for the
curves); its score at a budget is its last point taken after an episode that ended
within it. Evaluation episodes are not counted in any budget (``cells.json`` reports
their env steps). ``eval_episodes=0`` scores training returns instead (the former
protocol; ``score_window`` applies to it only).

**Normalisation.** ``zero_shot`` of a task is the mean over seeds of adapt's zero-shot
level: the zero-shot z (inferred from the model's dataset labels) on the same fixed
start states as the evaluation points. Without paired evaluation, when the grid has the
``zero-shot`` adapter, it is instead the mean return of that adapter's training episodes
over all seeds. ``score_zero_shot = return / zero_shot``: 1 is the zero-shot
level. ``score_oracle = return / oracle`` with the oracle from ``--oracle TASK=VALUE``,
else the zero-shot return with the dataset labels, which is OpTI-BFM's oracle
definition (then both scores coincide; ``oracle_source`` says which). A normaliser
that is missing or <= 0 gives NaN scores (that task leaves the aggregates).

**Resume.** A cell whose folder has a ``summary.json`` with the requested budget is
skipped; any other cell is (re)run by ``adapt``, which resumes after its last
finished episode. So a killed comparison is continued by rerunning the same command,
without losing or double-counting episodes.

**Executors.** ``"local"``: a process pool (``spawn`` context, torch 1 thread per
worker; ``workers=1`` runs the cells in this process). ``"ray"``: one Ray task per
cell (``pip install 'bfm_gym[ray]'``); on a cluster, ``out`` must be on a file system
every node sees and bfm_gym must be installed on the nodes. Adapter names are looked
up with :func:`bfm_gym.plugins.load_plugins` inside every worker; the ``BFM_GYM_*``
environment variables (``BFM_GYM_LOAD_PLUGINS``...) are passed to the workers.
Adapters registered only in-process (``pm.register`` in a script) do not reach
workers; register them through an entry point.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
import os
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bfm_gym.config import SetValue
from bfm_gym.envs.registration import task_name
from bfm_gym.errors import UserError, check_count, check_out_dir, check_own_folder, unknown_name
from bfm_gym.utils.io import atomic_path, write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

__all__ = ["BUDGET_KEYS", "CompareError", "CompareResult", "CompareSpec", "compare", "parse_overrides"]

BUDGET_KEYS = frozenset({"episodes", "budget_steps", "budget_labels", "max_labels",
                         "max_episode_steps", "seed", "seeds"})
"""Keys ``--set ADAPTER.KEY=...`` may not set: they would give cells unequal budgets."""

_RESULT_COLUMNS = ("adapter", "task", "seed", "episode", "env_steps", "sim_steps", "labels_used",
                   "return", "within_budget", "zero_shot", "oracle", "oracle_source",
                   "score_zero_shot", "score_oracle", "eval_return", "eval_std", "eval_score_zero_shot",
                   "wall_s")
"""``return``/``score_*``: the training episode; ``eval_*``: the evaluation point taken after
it (mean and std over the fixed start states; empty where none was taken)."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


class CompareError(UserError, RuntimeError):
    """Some cells failed; the others' folders are kept, rerun to resume."""


@dataclass(frozen=True, kw_only=True)
class CompareSpec:
    """The grid and its budgets, as written to ``compare.json``."""

    model: str
    """Shipped model name or model folder (workers load it by this name)."""
    domain: str
    """The model's domain."""
    tasks: tuple[str, ...]
    """Canonical task names, ``"walker-run"``."""
    adapters: tuple[str, ...]
    """Registered adapter names."""
    seeds: tuple[int, ...]
    """Seeds; every adapter and task runs each."""
    episodes: int
    """Episodes per cell (the budget is ``episodes x episode_length`` env steps)."""
    max_episode_steps: int | None
    """Episode cap (None: full 1000-step episodes)."""
    episode_length: int
    """Env steps per episode."""
    budget_steps: int
    """Env-step budget of every cell, lookahead steps included."""
    budget_labels: int
    """Cap on online reward labels of every cell."""
    configs: dict[str, dict[str, Any]]
    """Adapter -> full config (defaults filled in)."""
    oracle: dict[str, float]
    """Task -> oracle return given with ``--oracle`` (others: the zero-shot level)."""
    checkpoints: tuple[int, ...]
    """Budgets, in episodes, at which aggregates are reported (the last is ``episodes``)."""
    acts: dict[str, str] = field(default_factory=dict)
    """Adapter -> ``"latent"`` (searches z) or ``"env"`` (fine-tunes weights, acts on the env)."""
    eval_episodes: int = 5
    """Fixed start states per evaluation point (0: score training returns instead)."""
    eval_every: int = 0
    """Extra evaluation points every this many episodes' worth of budget (0: checkpoints only)."""

    def eval_steps(self) -> list[int]:
        """Env-step budgets before which every cell takes an evaluation point."""
        if not self.eval_episodes:
            return []
        steps = {k * self.episode_length for k in self.checkpoints}
        if self.eval_every:
            steps |= {k * self.episode_length for k in range(self.eval_every, self.episodes + 1, self.eval_every)}
        return sorted(steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        d = asdict(self)
        for key in ("tasks", "adapters", "seeds", "checkpoints"):
            d[key] = list(d[key])
        return d

    def budget(self) -> dict[str, Any]:
        """The fields a rerun into the same folder must keep."""
        return {k: getattr(self, k) for k in ("model", "episodes", "max_episode_steps",
                                             "budget_steps", "budget_labels", "eval_episodes", "eval_every")}

    def cells(self) -> list[tuple[str, str, int]]:
        """``(adapter, task, seed)`` in a fixed order."""
        return list(itertools.product(self.adapters, self.tasks, self.seeds))


@dataclass
class CompareResult:
    """What :func:`compare` produced (also written to ``out``)."""

    out: Path
    spec: CompareSpec
    rows: list[dict[str, Any]]
    """One dict per (adapter, task, seed, episode); the columns of ``results.csv``."""
    cells: list[dict[str, Any]]
    """Per cell: budgets given and used, status (``ran``/``skipped``)."""
    aggregates: dict[str, Any]
    """The contents of ``aggregates.json``."""
    files: dict[str, Path] = field(default_factory=dict)


def cell_name(adapter: str, task: str, seed: int) -> str:
    """Folder name of a cell: ``{adapter}__{task}__s{seed}``."""
    return f"{adapter}__{task}__s{seed}"


def parse_overrides(values: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parses ``ADAPTER.KEY=VALUE`` strings; each value is parsed by its config field's type.

    Args:
        values: E.g. ``["opti.beta=0.2", "rela.lr=1e-3"]``.

    Returns:
        ``{"opti": {"beta": "0.2"}, "rela": {"lr": "1e-3"}}`` with :class:`~bfm_gym.config.SetValue`
        strings, which the adapter's ``config_class.from_dict`` turns into ``0.2`` and ``0.001``.

    Raises:
        ValueError: An item without ``=`` or without an ``ADAPTER.`` prefix.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        adapter, dot, name = key.strip().partition(".")
        if not sep or not dot or not adapter or not name:
            raise ValueError(f"--set needs ADAPTER.KEY=VALUE (e.g. opti.beta=0.2); got {item!r}.")
        fields = out.setdefault(adapter, {})
        if name in fields:
            raise UserError(f"--set {adapter}.{name} is given twice; keep one.")
        fields[name] = SetValue(raw.strip())  # typed by the adapter's config (bfm_gym.config)
    return out


# ---------------------------------------------------------------------------------
# Planning: every check that can fail runs here, before any worker starts.
# ---------------------------------------------------------------------------------


def _split(names: str | Sequence[str]) -> list[str]:
    items = names.split(",") if isinstance(names, str) else list(names)
    return [n.strip() for n in items if n and n.strip()]


def plan(
    model: str | os.PathLike[str],
    tasks: str | Sequence[str],
    adapters: str | Sequence[str],
    *,
    seeds: int | Sequence[int] = 5,
    episodes: int = 50,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    max_episode_steps: int | None = None,
    max_labels: int | None = None,
    oracle: Mapping[str, float] | None = None,
    checkpoints: Sequence[int] | None = None,
    eval_episodes: int = 5,
    eval_every: int = 0,
) -> CompareSpec:
    """Checks a comparison request and returns its :class:`CompareSpec` (runs nothing).

    Args: as :func:`compare`.

    Raises:
        ValueError: Unknown model/task/adapter (the message lists valid names), an
            invalid config field, a budget override, or an adapter whose needs the
            model cannot meet.
    """
    from bfm_gym.envs.dmc_env import EPISODE_STEPS
    from bfm_gym.experiments.adapt import _resolve_task, _samples
    from bfm_gym.plugins import load_plugins
    from bfm_gym.pretrained import resolve

    if isinstance(model, os.PathLike) or not isinstance(model, str):
        model = os.fspath(model)
    adapter_names, task_names = _split(adapters), _split(tasks)
    if not adapter_names or not task_names:
        raise ValueError("Give at least one adapter and one task.")
    for kind, names in (("adapter", adapter_names), ("task", task_names)):
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"{kind} listed twice: {', '.join(dup)}.")
    try:
        seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise UserError(f"seeds must be a count or a list of non-negative ints; got {seeds!r}.") from None
    if not seed_list or len(set(seed_list)) != len(seed_list) or min(seed_list) < 0:
        raise ValueError(f"seeds must be a positive count or distinct non-negative ints; got {seeds!r}.")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1; got {episodes}.")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be >= 1; got {max_episode_steps}.")

    registry = load_plugins().adapters
    unknown = [a for a in adapter_names if a not in registry]
    if unknown:
        raise unknown_name("adapter", unknown[0], registry,
                           fix="Plugins add more: `bfm-gym plugins --hook register_adapters`.")
    for name in adapter_names:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"Adapter name {name!r} cannot name a folder; use letters, digits, '.', '_', '-'.")
    if not isinstance(config or {}, Mapping) or not all(isinstance(v, Mapping) for v in (config or {}).values()):
        raise UserError(f"config maps adapter -> {{field: value}} (e.g. {{'opti': {{'beta': 0.2}}}}); got {config!r}.")
    config = {k: dict(v) for k, v in (config or {}).items()}
    extra = sorted(set(config) - set(adapter_names))
    if extra:
        raise ValueError(f"--set for adapter(s) not in the comparison: {', '.join(extra)}; "
                         f"adapters: {', '.join(adapter_names)}.")
    for name, fields in config.items():
        bad = sorted(set(fields) & BUDGET_KEYS)
        if bad:
            raise ValueError(
                f"--set {name}.{bad[0]}: per-adapter {bad[0]!r} would give cells unequal budgets; "
                "compare gives every cell the same budget (use --episodes, --max-episode-steps, "
                "--max-labels, --seeds for all adapters)."
            )

    model_dir = resolve(model)  # unknown name: lists the shipped models
    import bfm_gym

    bfm = bfm_gym.load(model_dir)
    domain = bfm.metadata.domain
    if domain is None:
        raise ValueError(f"Model {model!r} records no domain; compare needs a model trained on a bfm_gym domain.")
    canonical = []
    for t in task_names:
        spec = _resolve_task(domain, t, None)  # unknown task: lists the valid ones
        canonical.append(f"{domain}-{spec['task']}")
    if len(set(canonical)) != len(canonical):
        raise ValueError(f"A task is listed twice: {', '.join(task_names)}.")

    samples = _samples(model)
    configs: dict[str, dict[str, Any]] = {}
    acts: dict[str, str] = {}
    for name in adapter_names:
        cls = registry[name][0]
        try:
            cfg = cls.config_class.from_dict(config.get(name))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"--set for {name}: {exc}") from exc
        needs = cls.needs_for(cfg)
        if "dataset" in needs.labels and samples is None:
            raise ValueError(f"Adapter {name!r} needs the model's dataset samples (inference samples); "
                             f"{model!r} ships none. Pass a model folder made by `bfm-gym pretrain`.")
        configs[name] = json.loads(json.dumps(cfg.to_dict()))
        acts[name] = needs.acts

    oracles: dict[str, float] = {}
    for key, value in (oracle or {}).items():
        name = f"{domain}-{task_name(domain, key)}"
        if name not in canonical:
            raise ValueError(f"--oracle for task {key!r}, which is not compared; tasks: {', '.join(canonical)}.")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"oracle for {key!r} must be a number (a reference return); got {value!r}.")
        oracles[name] = float(value)

    length = min(max_episode_steps, EPISODE_STEPS) if max_episode_steps else EPISODE_STEPS
    budget_steps = episodes * length
    if max_labels is not None and max_labels < 1:
        raise ValueError(f"max_labels must be >= 1; got {max_labels}.")
    if checkpoints is None:
        checks = sorted({c for c in (1, 10, 20, 50) if c < episodes} | {episodes})
    else:
        checks = sorted({int(c) for c in checkpoints} | {episodes})
        if checks[0] < 1 or checks[-1] > episodes:
            raise ValueError(f"checkpoints are episode counts in 1..{episodes}; got {list(checkpoints)}.")
    return CompareSpec(model=model, domain=domain, tasks=tuple(canonical), adapters=tuple(adapter_names),
                       seeds=tuple(seed_list), episodes=episodes, max_episode_steps=max_episode_steps,
                       episode_length=length, budget_steps=budget_steps,
                       budget_labels=max_labels if max_labels is not None else budget_steps,
                       configs=configs, oracle=oracles, checkpoints=tuple(checks), acts=acts,
                       eval_episodes=eval_episodes, eval_every=eval_every)


def _check_folder(out: Path, spec: CompareSpec) -> None:
    """Refuses an ``out`` holding a comparison with another model/budget or cells with other configs."""
    path = out / "compare.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise UserError(f"{path} is damaged ({exc}); delete {out} to start over, or choose another --out.") from exc
        mine = json.loads(json.dumps(spec.budget()))
        # folders from before paired evaluation: no eval keys, i.e. eval_episodes 0
        diff = [k for k, v in mine.items() if old.get(k, 0 if k.startswith("eval_") else None) != v]
        if diff:
            raise ValueError(
                f"{out} holds a comparison with another {', '.join(diff)} "
                f"({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); unequal budgets cannot be "
                "compared: choose another --out."
            )
    for adapter, task, seed in spec.cells():
        run_json = out / "cells" / cell_name(adapter, task, seed) / "run.json"
        if run_json.is_file():
            try:
                run = json.loads(run_json.read_text())
                run.get("config")
            except (ValueError, AttributeError) as exc:
                raise UserError(f"{run_json} is damaged ({exc}); delete that cell folder to rerun the "
                                "cell, or choose another --out.") from exc
            if run.get("config") != spec.configs[adapter]:
                raise ValueError(
                    f"Cell {run_json.parent.name} ran with another {adapter} config "
                    f"({run.get('config')}); use another --out or delete that cell folder."
                )


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


# ---------------------------------------------------------------------------------
# Executors. A job is a plain dict (picklable by spawn and Ray).
# ---------------------------------------------------------------------------------


def _forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("BFM_GYM_") or k == "MUJOCO_GL"}


def _init_worker(env: Mapping[str, str], parent: int | None = None) -> None:
    """Process-pool initializer: plugin settings, one torch thread, and a watchdog that
    ends the worker when ``compare`` itself dies (``kill``, ``kill -9``, a crash): an
    orphaned worker would otherwise keep writing into a cell that the next run resumes."""
    os.environ.update(env)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    if parent is not None:
        import threading

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="bfm-gym-parent-watchdog", daemon=True).start()


def run_cell(job: Mapping[str, Any]) -> dict[str, Any]:
    """Runs one cell (``adapt`` into its folder, resuming) in the calling process.

    Args:
        job: ``model, task, adapter, seed, folder, episodes, config, max_episode_steps,
            budget_steps, budget_labels, oracle, env`` (env vars to set first).

    Returns:
        ``{"records": [...], "summary": {...}}`` of the cell.
    """
    os.environ.update(job.get("env", {}))
    import torch

    from bfm_gym.experiments.adapt import adapt

    torch.set_num_threads(1)
    res = adapt(job["model"], job["task"], job["adapter"], episodes=job["episodes"], seed=job["seed"],
                out=job["folder"], config=job["config"], max_episode_steps=job["max_episode_steps"],
                budget_steps=job["budget_steps"], budget_labels=job["budget_labels"],
                oracle=job["oracle"], progress=False, eval_episodes=job.get("eval_episodes", 0),
                eval_steps=job.get("eval_steps"), zero_shot_episodes=job.get("eval_episodes") or 5)
    return {"records": res.records, "summary": res.summary}


def _run_inline(job: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    threads = torch.get_num_threads()
    try:
        return run_cell({**job, "env": {}})
    finally:
        torch.set_num_threads(threads)


Poll = Callable[[Mapping[str, Any]], None]
"""Called after each wait with the results so far (cell name -> result or exception)."""


def _execute_local(jobs: list[dict[str, Any]], workers: int, poll: Poll) -> dict[str, Any]:
    import concurrent.futures as cf
    import multiprocessing as mp

    results: dict[str, Any] = {}
    if workers == 1:
        pool: cf.Executor = cf.ThreadPoolExecutor(1)  # this process; a thread keeps the bar moving
        submit = _run_inline
    else:
        pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                      initializer=_init_worker, initargs=(_forwarded_env(), os.getpid()))
        submit = run_cell
    try:
        futures = {pool.submit(submit, job): job["name"] for job in jobs}
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            for f in done:
                try:
                    results[futures[f]] = f.result()
                except cf.process.BrokenProcessPool as exc:
                    results[futures[f]] = RuntimeError(f"a worker process died ({exc})")
                except Exception as exc:  # reported per cell; the others keep running
                    results[futures[f]] = exc
            poll(results)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


RAY_MISSING = "--executor ray needs Ray, an optional extra: pip install 'bfm_gym[ray]'"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(RAY_MISSING) from exc
    return ray


def _execute_ray(jobs: list[dict[str, Any]], workers: int, address: str | None, poll: Poll) -> dict[str, Any]:
    ray = _import_ray()
    env = _forwarded_env()
    owned = not ray.is_initialized()
    if owned:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 runtime_env={"env_vars": env} if env else None)
    results: dict[str, Any] = {}
    try:
        remote = ray.remote(num_cpus=1)(run_cell)
        refs = {remote.remote(job): job["name"] for job in jobs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            for ref in done:
                try:
                    results[refs[ref]] = ray.get(ref)
                except Exception as exc:
                    cause = getattr(exc, "cause", None)
                    results[refs[ref]] = cause if isinstance(cause, BaseException) else exc
            poll(results)
    finally:
        if owned:
            ray.shutdown()
    return results


# ---------------------------------------------------------------------------------
# compare()
# ---------------------------------------------------------------------------------


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
        _import_ray()
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
                checkpoints=checkpoints, eval_episodes=eval_episodes, eval_every=eval_every)
    folder = Path(out)
    _check_folder(folder, spec)
    (folder / "cells").mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "compare.json", spec.to_dict(), newline=False)

    cells = spec.cells()
    done: dict[str, list[dict[str, Any]]] = {}
    jobs: list[dict[str, Any]] = []
    for adapter, task, seed in cells:
        name = cell_name(adapter, task, seed)
        records = _finished(folder / "cells" / name, spec)
        if records is not None:
            done[name] = records
            continue
        jobs.append({"name": name, "model": spec.model, "task": task, "adapter": adapter, "seed": seed,
                     "folder": str(folder / "cells" / name), "episodes": spec.episodes,
                     "config": spec.configs[adapter], "max_episode_steps": spec.max_episode_steps,
                     "budget_steps": spec.budget_steps, "budget_labels": spec.budget_labels,
                     "oracle": spec.oracle.get(task), "env": _forwarded_env(),
                     "eval_episodes": spec.eval_episodes, "eval_steps": spec.eval_steps()})
    n_workers = workers or max(1, min(os.cpu_count() or 1, len(jobs) or 1))
    logger.info("compare: %d cells, %d finished, %d to run on %s (%d workers)",
                len(cells), len(done), len(jobs), executor, n_workers)

    from tqdm.auto import tqdm

    # progress in episodes' worth of env-step budget (lookahead steps count, so a LoLA cell
    # spends its budget in fewer real episodes)
    bar = tqdm(total=len(cells) * spec.episodes, initial=len(done) * spec.episodes, unit="ep",
               desc="compare", disable=not progress)

    def poll(finished: Mapping[str, Any]) -> None:
        count = len(done) * spec.episodes
        for job in jobs:
            if job["name"] in finished and not isinstance(finished[job["name"]], BaseException):
                count += spec.episodes
            else:
                steps = _steps_spent(Path(job["folder"]) / "records.jsonl")
                count += min(spec.episodes, steps // spec.episode_length)
        bar.update(count - bar.n)

    start = time.perf_counter()
    results: dict[str, Any] = {}
    if jobs and executor == "local":
        results = _execute_local(jobs, n_workers, poll)
    elif jobs:
        results = _execute_ray(jobs, n_workers, address, poll)
    bar.close()
    failed = {k: v for k, v in results.items() if isinstance(v, BaseException)}
    if failed:
        lines = [f"{k}: {type(v).__name__}: {v}" for k, v in sorted(failed.items())]
        raise CompareError(f"{len(failed)} of {len(cells)} cells failed (finished episodes are kept; "
                           "rerun the same command to resume):\n  " + "\n  ".join(lines))
    for name, res in results.items():
        done[name] = res["records"]
    logger.info("compare: cells ran in %.1f s", time.perf_counter() - start)

    ran = {job["name"] for job in jobs}
    return _write_outputs(folder, spec, done, ran, bootstrap_reps,
                          command or _equivalent_command(spec, folder), score_window)


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
        for key, value in spec.configs[adapter].items():
            if defaults.get(key) != value:
                args += ["--set", f"{adapter}.{key}={json.dumps(value)}"]
    for task, value in spec.oracle.items():
        args += ["--oracle", f"{task}={value}"]
    return shlex.join(args)


# ---------------------------------------------------------------------------------
# Tables and aggregates
# ---------------------------------------------------------------------------------


def _ratio(value: float, by: float | None) -> float:
    return float(value) / by if by is not None and math.isfinite(by) and by > 0 else float("nan")


def _levels(spec: CompareSpec, folder: Path) -> tuple[dict[str, float | None], dict[str, list[float]]]:
    """Per task: zero-shot level (mean over seeds) and the per-seed values."""
    per_seed: dict[str, dict[int, float]] = {t: {} for t in spec.tasks}
    for adapter, task, seed in spec.cells():
        if seed in per_seed[task]:
            continue
        try:
            zs = json.loads((folder / "cells" / cell_name(adapter, task, seed) / "summary.json")
                            .read_text()).get("zero_shot")
        except (FileNotFoundError, json.JSONDecodeError):
            zs = None
        if zs is not None:
            per_seed[task][seed] = float(zs)
    if (not spec.eval_episodes and "zero-shot" in spec.adapters
            and not spec.configs.get("zero-shot", {}).get("online_labels")):
        # unpaired scoring: the zero-shot cells ran the same z for the whole budget, and their
        # mean return over every episode and seed is a less noisy level than a few episodes
        for task in spec.tasks:
            means: dict[int, float] = {}
            for seed in spec.seeds:
                path = folder / "cells" / cell_name("zero-shot", task, seed) / "records.jsonl"
                try:
                    returns = [json.loads(line)["return"] for line in path.read_text().splitlines() if line]
                except FileNotFoundError:
                    returns = []
                if returns:
                    means[seed] = float(np.mean(returns))
            if means:
                per_seed[task] = means
    levels = {t: (float(np.mean(list(v.values()))) if v else None) for t, v in per_seed.items()}
    return levels, {t: list(v.values()) for t, v in per_seed.items()}


def _score_at(records: list[dict[str, Any]], steps: int, labels: int,
              window: int = 1, evaluation: bool = False) -> dict[str, Any] | None:
    """The last episode that ended within ``steps`` env steps and ``labels`` labels; with
    ``window > 1`` its ``return`` is the mean over the last ``window`` such episodes.

    ``evaluation=True``: the last such episode followed by an evaluation point, with
    ``return`` its mean over the fixed start states (``window`` is not used).
    """
    within: list[dict[str, Any]] = []
    for r in records:
        if r["env_steps"] <= steps and r["labels_used"] <= labels:
            within.append(r)
        else:
            break
    if evaluation:
        points = [r for r in within if "eval_return" in r]
        return {**points[-1], "return": points[-1]["eval_return"]} if points else None
    if not within:
        return None
    if window <= 1:
        return within[-1]
    return {**within[-1], "return": float(np.mean([r["return"] for r in within[-window:]]))}


def _write_outputs(folder: Path, spec: CompareSpec, records: dict[str, list[dict[str, Any]]],
                   ran: set[str], reps: int, command: str, window: int = 1) -> CompareResult:
    from bfm_gym.experiments import report
    from bfm_gym.experiments.aggregate import performance_profile, stratified_bootstrap

    levels, level_values = _levels(spec, folder)
    paired = spec.eval_episodes > 0
    oracle = {t: (spec.oracle[t], "--oracle") if t in spec.oracle else (levels[t], "zero-shot (dataset labels)")
              for t in spec.tasks}
    rows: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    for adapter, task, seed in spec.cells():
        name = cell_name(adapter, task, seed)
        recs = records[name]
        zs, (orc, source) = levels[task], oracle[task]
        for r in recs:
            within = r["env_steps"] <= spec.budget_steps and r["labels_used"] <= spec.budget_labels
            rows.append({"adapter": adapter, "task": task, "seed": seed, "episode": r["episode"],
                         "env_steps": r["env_steps"], "sim_steps": r.get("sim_steps", 0),
                         "labels_used": r["labels_used"], "return": r["return"], "within_budget": within,
                         "zero_shot": zs, "oracle": orc, "oracle_source": source,
                         "score_zero_shot": _ratio(r["return"], zs), "score_oracle": _ratio(r["return"], orc),
                         "eval_return": r.get("eval_return"), "eval_std": r.get("eval_std"),
                         "eval_score_zero_shot": (_ratio(r["eval_return"], zs) if "eval_return" in r else None),
                         "wall_s": r.get("wall_s")})
        last = recs[-1] if recs else {"env_steps": 0, "labels_used": 0, "sim_steps": 0, "wall_s": 0.0}
        cells.append({"cell": name, "adapter": adapter, "task": task, "seed": seed,
                      "status": "ran" if name in ran else "skipped", "episodes": len(recs),
                      "budget_steps": spec.budget_steps, "budget_labels": spec.budget_labels,
                      "env_steps": last["env_steps"], "sim_steps": last.get("sim_steps", 0),
                      "labels_used": last["labels_used"],
                      "over_budget_steps": max(0, last["env_steps"] - spec.budget_steps),
                      "eval_points": sum("eval_return" in r for r in recs),
                      "eval_env_steps": sum(r.get("eval_env_steps", 0) for r in recs),
                      "wall_s": last.get("wall_s"), "config": spec.configs[adapter]})

    # Scores at each budget checkpoint: cell -> score (NaN when no episode ended within it).
    checkpoints = []
    agg_rows: list[dict[str, Any]] = []
    for k in spec.checkpoints:
        steps = k * spec.episode_length
        entry: dict[str, Any] = {"episodes": k, "env_steps": steps, "adapters": {}}
        for adapter in spec.adapters:
            per_norm: dict[str, Any] = {}
            for norm in ("zero_shot", "oracle"):
                by_task: dict[str, list[float]] = {}
                for task in spec.tasks:
                    vals = []
                    for seed in spec.seeds:
                        r = _score_at(records[cell_name(adapter, task, seed)], steps, spec.budget_labels,
                                      window, paired)
                        by = levels[task] if norm == "zero_shot" else oracle[task][0]
                        vals.append(_ratio(r["return"], by) if r is not None else float("nan"))
                    by_task[task] = vals
                stats = {}
                for stat in ("iqm", "mean"):
                    iv = stratified_bootstrap(by_task, stat, reps=reps, seed=0)
                    stats[stat] = iv.to_dict()
                    agg_rows.append({"checkpoint_episodes": k, "env_steps": steps, "adapter": adapter,
                                     "normalisation": norm, "statistic": stat, **iv.to_dict()})
                per_norm[norm] = {"stats": stats, "scores": by_task}
            raw = {task: [(_score_at(records[cell_name(adapter, task, s)], steps, spec.budget_labels, window,
                                     paired) or {"return": float("nan")})["return"] for s in spec.seeds]
                   for task in spec.tasks}
            per_norm["return"] = raw
            entry["adapters"][adapter] = per_norm
        checkpoints.append(entry)

    final = checkpoints[-1]
    taus = _taus([v for a in spec.adapters for t in spec.tasks
                  for v in final["adapters"][a]["oracle"]["scores"][t]])
    profile = {"normalisation": "oracle", "checkpoint_episodes": spec.episodes, "tau": taus.tolist(),
               "adapters": {}}
    for adapter in spec.adapters:
        frac, lo, hi = performance_profile(final["adapters"][adapter]["oracle"]["scores"], taus, reps=reps)
        profile["adapters"][adapter] = {"fraction": frac.tolist(), "low": lo.tolist(), "high": hi.tolist()}

    aggregates = {
        "latent_vs_weights": _latent_vs_weights(spec, checkpoints, reps),
        "definitions": {
            "iqm": "mean of the middle 50% of runs (tasks x seeds pooled) = scipy.stats.trim_mean(x, 0.25)",
            "ci": f"95% percentile interval, stratified bootstrap ({reps} replicates; strata = tasks, "
                  "seeds resampled within each task)",
            "score_zero_shot": "return / zero-shot level of the task (mean over seeds)",
            "score_oracle": "return / oracle (--oracle, else the zero-shot return with dataset labels, "
                            "OpTI-BFM's oracle)",
            "checkpoint": (f"a cell's score at a budget of B env steps is its last evaluation point "
                           f"({spec.eval_episodes} episodes from fixed start states, z frozen, deterministic "
                           "policy) taken after an episode that ended within B env steps and the label cap "
                           "(NaN if none); evaluation episodes are not counted in the budget" if paired else
                           f"a cell's score at a budget of B env steps is the mean return of its last "
                           f"{window} training episode(s) that ended within B env steps and the label cap "
                           "(NaN if none)"),
        },
        "score_source": "evaluation" if paired else "training",
        "evaluation": ({"episodes_per_point": spec.eval_episodes, "eval_every": spec.eval_every,
                        "before_budgets": spec.eval_steps(), "counted_in_budget": False,
                        "start_states": "adapt.evaluation_seeds(seed, n): shared by every adapter of a seed "
                                        "and by the zero-shot level"} if paired else None),
        "paired_vs_zero_shot": _paired_vs_zero_shot(spec, folder, records) if paired else None,
        "score_window": window,
        "budget": {"episodes": spec.episodes, "episode_length": spec.episode_length,
                   "budget_steps": spec.budget_steps, "budget_labels": spec.budget_labels},
        "zero_shot": {t: {"level": levels[t], "per_seed": level_values[t]} for t in spec.tasks},
        "oracle": {t: {"value": oracle[t][0], "source": oracle[t][1]} for t in spec.tasks},
        "checkpoints": [{"episodes": c["episodes"], "env_steps": c["env_steps"],
                         "adapters": {a: {n: c["adapters"][a][n]["stats"] for n in ("zero_shot", "oracle")}
                                      for a in spec.adapters}} for c in checkpoints],
        "performance_profile": profile,
    }
    files = _write_tables(folder, rows, cells, aggregates, agg_rows)
    files.update(report.write_report(folder, spec, rows, cells, aggregates, checkpoints, command, reps))
    return CompareResult(out=folder, spec=spec, rows=rows, cells=cells, aggregates=aggregates, files=files)


def _paired_vs_zero_shot(spec: CompareSpec, folder: Path,
                         records: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per adapter and task at the final budget: its last evaluation point minus the zero-shot
    z's return on the same start state, pooled over seeds x start states.

    ``mean_difference`` with a 95 % interval (bootstrap over the pooled pairs, 2000
    resamples, seed 0), ``better``/``worse``/``pairs``: how many pairs went up/down.
    """
    out: dict[str, dict[str, Any]] = {}
    for adapter in spec.adapters:
        out[adapter] = {}
        for task in spec.tasks:
            diffs: list[float] = []
            for seed in spec.seeds:
                name = cell_name(adapter, task, seed)
                point = _score_at(records[name], spec.budget_steps, spec.budget_labels, evaluation=True)
                try:
                    zs = json.loads((folder / "cells" / name / "summary.json").read_text()).get("zero_shot_returns")
                except (FileNotFoundError, json.JSONDecodeError):
                    zs = None
                if point is None or not zs:
                    continue
                n = min(len(zs), len(point["eval_returns"]))
                diffs += list(np.subtract(point["eval_returns"][:n], zs[:n]))
            if not diffs:
                out[adapter][task] = {"pairs": 0, "mean_difference": None, "low": None, "high": None,
                                      "better": 0, "worse": 0}
                continue
            d = np.asarray(diffs, dtype=np.float64)
            means = d[np.random.default_rng(0).integers(0, d.size, (2000, d.size))].mean(axis=1)
            out[adapter][task] = {"pairs": int(d.size), "mean_difference": round(float(d.mean()), 4),
                                  "low": round(float(np.quantile(means, 0.025)), 4),
                                  "high": round(float(np.quantile(means, 0.975)), 4),
                                  "better": int((d > 0).sum()), "worse": int((d < 0).sum())}
    return out


def _latent_vs_weights(spec: CompareSpec, checkpoints: list[dict[str, Any]], reps: int) -> list[dict[str, Any]]:
    """Head to head of every latent adapter against every weight fine-tuning one, per budget.

    ``tasks_won``: tasks where the latent adapter's mean return over seeds is higher;
    ``p_improvement``: ``P(latent run > fine-tuning run)`` averaged over tasks, with a
    bootstrap CI (:func:`~bfm_gym.experiments.aggregate.probability_of_improvement`).
    """
    from bfm_gym.experiments.aggregate import probability_of_improvement

    latent = [a for a in spec.adapters if spec.acts.get(a) == "latent"]
    weights = [a for a in spec.adapters if spec.acts.get(a) == "env"]
    out = []
    for cp in checkpoints:
        for a in latent:
            for b in weights:
                ra, rb = cp["adapters"][a]["return"], cp["adapters"][b]["return"]
                won, compared = [], 0
                for task in spec.tasks:
                    xa, xb = np.asarray(ra[task], dtype=float), np.asarray(rb[task], dtype=float)
                    xa, xb = xa[np.isfinite(xa)], xb[np.isfinite(xb)]
                    if xa.size and xb.size:
                        compared += 1
                        if xa.mean() > xb.mean():
                            won.append(task)
                poi = probability_of_improvement(ra, rb, reps=reps, seed=0)
                out.append({"episodes": cp["episodes"], "env_steps": cp["env_steps"], "latent": a,
                            "weights": b, "tasks_won": won, "tasks_compared": compared,
                            "p_improvement": poi.to_dict()})
    return out


def _taus(values: list[float]) -> np.ndarray:
    finite = [v for v in values if math.isfinite(v)]
    top = max([*finite, 1.0]) * 1.05
    low = min([*finite, 0.0])
    return np.linspace(low, top, 101)


def _csv_text(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _write_tables(folder: Path, rows: list[dict[str, Any]], cells: list[dict[str, Any]],
                  aggregates: dict[str, Any], agg_rows: list[dict[str, Any]]) -> dict[str, Path]:
    files = {"results.csv": folder / "results.csv", "cells.json": folder / "cells.json",
             "aggregates.json": folder / "aggregates.json", "aggregates.csv": folder / "aggregates.csv"}
    write_text_atomic(files["results.csv"], _csv_text(rows, _RESULT_COLUMNS))
    write_json_atomic(files["cells.json"], cells, newline=False)
    write_json_atomic(files["aggregates.json"], _json_safe(aggregates), newline=False)
    write_text_atomic(files["aggregates.csv"], _csv_text(agg_rows, list(agg_rows[0]) if agg_rows else ["adapter"]))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        logger.info("pyarrow not installed: no results.parquet")
    else:
        with atomic_path(folder / "results.parquet") as tmp:
            pq.write_table(pa.Table.from_pylist([{c: r[c] for c in _RESULT_COLUMNS} for r in rows]), tmp)
        files["results.parquet"] = folder / "results.parquet"
    return files


def _json_safe(obj: Any) -> Any:
    """NaN -> None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj
