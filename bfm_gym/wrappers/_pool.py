"""Where the vector env's inner envs step: here one after the other, in worker threads, or in
worker processes.

:class:`LocalPool` steps every env here, one after the other. :class:`ThreadPool` splits the
envs in contiguous chunks and steps each chunk in its own thread: MuJoCo releases the GIL
while it integrates (``mj_step``), so the physics of different chunks runs at the same time
while their Python code (observations, rewards) takes turns. The envs never leave this
process, every env is stepped by one thread with the calls it would get here, and every
other command (reset, state, call, render) runs in the caller's thread between steps.
:class:`ProcessPool` keeps
the first chunk of envs here and moves every other chunk into a forked worker process, so
that the simulators of different chunks step at the same time while the batched policy
forward stays in this process: per low-level step the vector env sends each worker its
envs' actions, steps its own chunk, then collects the workers' results. Each env is
stepped by exactly one process with exactly the calls it would get in this process, so
observations, rewards, flags and infos are the same, bit for bit (a test checks it).

Workers are forked (``fork`` start method): they inherit the envs as built here, nothing is
pickled on the way in, and they run no torch op. After the fork the parent's copies of the
moved envs are never stepped; every call reaches the live env through the pool.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import sys
import threading
import traceback
from typing import Any

import gymnasium as gym
import numpy as np

StepResult = tuple[Any, Any, Any, Any, dict[str, Any], "np.ndarray | None"]
"""``(next_obs, reward, terminated, truncated, info, state_or_None)`` of one env step."""


def _state(env: gym.Env) -> np.ndarray:
    return np.asarray(env.unwrapped.get_state(), dtype=np.float64)


def _step_envs(envs: dict[int, gym.Env], idx: list[int], actions: list[np.ndarray],
               want_state: bool) -> list[StepResult]:  # fmt: skip
    out = []
    for i, a in zip(idx, actions, strict=True):
        env = envs[i]
        o, r, te, tr, info = env.step(a)
        out.append((o, r, te, tr, info, _state(env) if want_state else None))
    return out


def _chunks(n: int, workers: int) -> list[list[int]]:
    """``min(workers, n)`` contiguous chunks of ``range(n)``, as equal as can be."""
    workers = max(1, min(int(workers), n))
    bounds = np.linspace(0, n, workers + 1).round().astype(int)
    return [list(range(bounds[k], bounds[k + 1])) for k in range(workers)]


def _by_owner(owner: np.ndarray, idx: list[int], actions: list[np.ndarray],
              ) -> dict[int, tuple[list[int], list[np.ndarray]]]:  # fmt: skip
    """The envs ``idx`` and their actions grouped by the chunk that steps them (0: here)."""
    groups: dict[int, tuple[list[int], list[np.ndarray]]] = {}
    for i, a in zip(idx, actions, strict=True):
        ids, acts = groups.setdefault(int(owner[i]), ([], []))
        ids.append(i)
        acts.append(a)
    return groups


def _do(envs: dict[int, gym.Env], cmd: str, payload: Any) -> Any:
    """One command on the envs of this process (the worker loop and the local chunk)."""
    if cmd == "step":
        return _step_envs(envs, *payload)
    if cmd == "reset":
        i, seed, options = payload
        return envs[i].reset(seed=seed, options=options)
    if cmd == "state":
        return np.asarray(envs[payload].unwrapped.get_state())
    if cmd == "call":
        i, name, args, kwargs = payload
        attr = envs[i].get_wrapper_attr(name)
        return attr(*args, **kwargs) if callable(attr) else attr
    if cmd == "set_attr":
        i, name, value = payload
        envs[i].set_wrapper_attr(name, value)
        return None
    if cmd == "render":
        return envs[payload].render()
    raise ValueError(f"unknown pool command {cmd!r}")


def _worker(conn: Any, envs: dict[int, gym.Env]) -> None:
    while True:
        try:
            cmd, payload = conn.recv()
        except (EOFError, OSError):  # parent gone
            break
        if cmd == "close":
            for env in envs.values():
                env.close()
            conn.send(("ok", None))
            break
        try:
            conn.send(("ok", _do(envs, cmd, payload)))
        except Exception as exc:  # sent back and raised again in the parent
            try:
                conn.send(("error", (exc, traceback.format_exc())))
            except Exception:  # an exception that does not pickle
                conn.send(("error", (RuntimeError(f"{type(exc).__name__}: {exc}"),
                                     traceback.format_exc())))
    conn.close()


class LocalPool:
    """Every env in this process."""

    workers = 1

    def __init__(self, envs: list[gym.Env]) -> None:
        self._envs = dict(enumerate(envs))

    def step(self, idx: list[int], actions: list[np.ndarray], want_state: bool) -> list[StepResult]:
        return _step_envs(self._envs, idx, actions, want_state)

    def run(self, i: int, cmd: str, payload: Any) -> Any:
        return _do(self._envs, cmd, payload)

    def close(self) -> None:
        for env in self._envs.values():
            env.close()


class ThreadPool:
    """Envs split in ``workers`` contiguous chunks: the first stepped by the calling thread,
    each other one by a daemon thread of its own (see the module docstring)."""

    def __init__(self, envs: list[gym.Env], workers: int) -> None:
        chunks = _chunks(len(envs), workers)
        self.workers = len(chunks)
        self._envs = dict(enumerate(envs))
        self._owner = np.zeros(len(envs), dtype=int)  # 0: the calling thread; k > 0: thread k
        self._inbox: dict[int, queue.SimpleQueue[Any]] = {}
        self._outbox: dict[int, queue.SimpleQueue[Any]] = {}
        self._threads: list[threading.Thread] = []
        for k, chunk in enumerate(chunks[1:], 1):
            self._owner[chunk] = k
            self._inbox[k], self._outbox[k] = queue.SimpleQueue(), queue.SimpleQueue()
            thread = threading.Thread(target=self._serve, args=(k,), daemon=True,
                                      name=f"bfm-gym-latent-vec-{k}")  # fmt: skip
            thread.start()
            self._threads.append(thread)
        self._closed = False

    def _serve(self, k: int) -> None:
        inbox, outbox, envs = self._inbox[k], self._outbox[k], self._envs
        while True:
            job = inbox.get()
            if job is None:
                break
            try:
                outbox.put(("ok", _step_envs(envs, *job)))
            except BaseException as exc:  # raised again in the caller's thread
                outbox.put(("error", exc))

    def step(self, idx: list[int], actions: list[np.ndarray], want_state: bool) -> list[StepResult]:
        if len(idx) == 1:  # one env left in its hold: no hand-off
            return _step_envs(self._envs, idx, actions, want_state)
        by_thread = _by_owner(self._owner, idx, actions)
        for k, (ids, acts) in by_thread.items():
            if k:
                self._inbox[k].put((ids, acts, want_state))
        results: dict[int, StepResult] = {}
        error: BaseException | None = None
        if 0 in by_thread:  # our own chunk while the threads step theirs
            ids, acts = by_thread[0]
            try:
                results.update(zip(ids, _step_envs(self._envs, ids, acts, want_state), strict=True))
            except BaseException as exc:  # wait for the threads before raising
                error = exc
        for k, (ids, _) in by_thread.items():
            if k:
                status, value = self._outbox[k].get()
                if status == "error":
                    error = error or value
                else:
                    results.update(zip(ids, value, strict=True))
        if error is not None:
            raise error
        return [results[i] for i in idx]

    def run(self, i: int, cmd: str, payload: Any) -> Any:
        return _do(self._envs, cmd, payload)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for k in self._inbox:
            self._inbox[k].put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        for env in self._envs.values():
            env.close()


class ProcessPool:
    """Envs split in ``workers`` contiguous chunks: the first here, each other one in a
    forked worker process (see the module docstring)."""

    def __init__(self, envs: list[gym.Env], workers: int) -> None:
        if "fork" not in mp.get_all_start_methods():
            raise ValueError(
                f"LatentActionVectorEnv(workers={workers}) forks worker processes, which this "
                f"platform ({sys.platform}) cannot do; use workers=1."
            )
        n = len(envs)
        chunks = _chunks(n, workers)
        self.workers = len(chunks)
        self._owner = np.zeros(n, dtype=int)  # 0: here; k > 0: worker k
        self._local = {i: envs[i] for i in chunks[0]}
        self._conns: dict[int, Any] = {}
        self._procs: list[Any] = []
        ctx = mp.get_context("fork")
        for k, chunk in enumerate(chunks[1:], 1):
            self._owner[chunk] = k
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, {i: envs[i] for i in chunk}),
                               daemon=True, name=f"bfm-gym-latent-vec-{k}")  # fmt: skip
            proc.start()
            child.close()
            self._conns[k], self._procs = parent, [*self._procs, proc]
        self._closed = False

    def _recv(self, k: int) -> Any:
        try:
            status, value = self._conns[k].recv()
        except (EOFError, OSError) as exc:
            raise RuntimeError(
                f"LatentActionVectorEnv: worker process {k} died; create a new vector env."
            ) from exc
        if status == "error":
            exc, tb = value
            raise exc from RuntimeError(f"in LatentActionVectorEnv worker {k}:\n{tb}")
        return value

    def step(self, idx: list[int], actions: list[np.ndarray], want_state: bool) -> list[StepResult]:
        by_worker = _by_owner(self._owner, idx, actions)
        for k, (ids, acts) in by_worker.items():
            if k:
                self._conns[k].send(("step", (ids, acts, want_state)))
        results: dict[int, StepResult] = {}
        if 0 in by_worker:  # our own chunk while the workers step theirs
            ids, acts = by_worker[0]
            results.update(zip(ids, _step_envs(self._local, ids, acts, want_state), strict=True))
        for k, (ids, _) in by_worker.items():
            if k:
                results.update(zip(ids, self._recv(k), strict=True))
        return [results[i] for i in idx]

    def run(self, i: int, cmd: str, payload: Any) -> Any:
        k = int(self._owner[i])
        if k == 0:
            return _do(self._local, cmd, payload)
        self._conns[k].send((cmd, payload))
        return self._recv(k)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for env in self._local.values():
            env.close()
        for k, conn in self._conns.items():
            try:
                conn.send(("close", None))
                self._recv(k)
            except (RuntimeError, OSError, BrokenPipeError):
                pass
            conn.close()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():  # pragma: no cover - a worker stuck in an env's close
                proc.terminate()
