"""Executors of a comparison: a local process pool and Ray. A job is a plain dict
(picklable by spawn and Ray); each runs one cell with :func:`run_cell`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["RAY_MISSING", "Poll", "execute_local", "execute_ray", "forwarded_env", "import_ray", "run_cell"]


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("BFM_GYM_") or k == "MUJOCO_GL"}


def _init_worker(env: Mapping[str, str], parent: int | None = None) -> None:
    """Process-pool initializer: plugin settings, one torch and one OpenBLAS thread (set at
    run time: the environment variable is read only where numpy is not imported yet), and a
    watchdog that ends the worker when ``compare`` itself dies (``kill``, ``kill -9``, a
    crash): an orphaned worker would otherwise keep writing into a cell that the next run
    resumes."""
    os.environ.update(env)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from bfm_gym.utils.blas import set_blas_threads

    torch.set_num_threads(1)
    set_blas_threads(1)
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
    from bfm_gym.utils.blas import set_blas_threads

    torch.set_num_threads(1)
    set_blas_threads(1)  # a Ray worker has no pool initializer
    res = adapt(job["model"], job["task"], job["adapter"], episodes=job["episodes"], seed=job["seed"],
                out=job["folder"], config=job["config"], max_episode_steps=job["max_episode_steps"],
                budget_steps=job["budget_steps"], budget_labels=job["budget_labels"],
                oracle=job["oracle"], progress=False, eval_episodes=job.get("eval_episodes", 0),
                eval_steps=job.get("eval_steps"), zero_shot_episodes=job.get("eval_episodes") or 5)
    return {"records": res.records, "summary": res.summary}


def _run_inline(job: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    from bfm_gym.utils.blas import blas_threads, set_blas_threads

    threads, blas = torch.get_num_threads(), blas_threads()
    try:
        return run_cell({**job, "env": {}})
    finally:
        torch.set_num_threads(threads)
        if blas is not None:
            set_blas_threads(blas)


Poll = Callable[[Mapping[str, Any]], None]
"""Called after each wait with the results so far (cell name -> result or exception)."""


def execute_local(jobs: list[dict[str, Any]], workers: int, poll: Poll) -> dict[str, Any]:
    import concurrent.futures as cf
    import multiprocessing as mp

    results: dict[str, Any] = {}
    if workers == 1:
        pool: cf.Executor = cf.ThreadPoolExecutor(1)  # this process; a thread keeps the bar moving
        submit = _run_inline
    else:
        pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                      initializer=_init_worker, initargs=(forwarded_env(), os.getpid()))
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


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(RAY_MISSING) from exc
    return ray


def execute_ray(jobs: list[dict[str, Any]], workers: int, address: str | None, poll: Poll) -> dict[str, Any]:
    ray = import_ray()
    env = forwarded_env()
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

