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

A low-level step is a few hundred microseconds of work split over the processes, so how it
is handed over matters. Through the pipe, the actions and results are pickled and the
worker, blocked in ``recv``, is woken by the kernel: together about what stepping the
chunk in parallel saves on a 2-core VM. On x86-64 each worker therefore has a
:class:`_StepChannel`: one shared mapping holding the actions, observations, rewards, flags
and states of its envs and a step counter. The parent writes the actions and bumps the
counter; the worker, spinning on it, steps its envs, writes the results and bumps a second
counter, on which the parent spins after stepping its own chunk. A worker that has seen no
step for 5 ms sleeps on its pipe instead (the parent wakes it), so an idle vector env costs
no core. Commands other than steps, and steps whose results do not fit the rows (non-empty
infos, observations of another shape), go through the pipe as before.

With the channel, a vector env whose policy rows are bitwise independent of the batch (the
numpy runner, ``exact=True``) also hands each worker its chunk's share of the policy forward
(:meth:`ProcessPool.act_and_step`, :class:`ChunkPolicy`): the parent writes the chunk's
observation and latent rows, the worker evaluates them with a runner of its own (built here
before the fork; a call is numpy only), steps its envs and writes back the env actions with
the results, while the parent does the same for the first chunk. Without it the parent ran the
forward for every env while the worker waited. Measured against 8 separate wrappers and
per-step timings: README, Measurements (``benchmarks/wrapper_throughput.py --only-vector``).
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import platform
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

StepResult = tuple[Any, Any, Any, Any, dict[str, Any], "np.ndarray | None"]
"""``(next_obs, reward, terminated, truncated, info, state_or_None)`` of one env step."""


@dataclass(frozen=True)
class ChunkPolicy:
    """How a process computes its own envs' actions (:meth:`ProcessPool.act_and_step`).

    ``runner(batch)`` builds a policy runner for ``batch`` rows whose rows are bitwise those of
    any other batch and whose calls run no torch op (``independent_rows``): the pool builds
    one per chunk before forking. ``to_env`` maps a row of pi's output to the env's action."""

    runner: Callable[[int], Any]
    to_env: Callable[[np.ndarray], np.ndarray]


def _independent_runner(policy: ChunkPolicy, n: int) -> Any:
    """``policy``'s runner for n rows, or None when its rows are not bitwise independent of
    the batch or a call may run torch ops (e.g. a runner that fell back to ``model.actor``)."""
    runner = policy.runner(n)
    return runner if getattr(runner, "independent_rows", False) is True else None


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


def _ids_by_owner(owner: np.ndarray, idx: list[int]) -> dict[int, list[int]]:
    """The envs ``idx`` grouped by the chunk that steps them (0: here)."""
    groups: dict[int, list[int]] = {}
    for i in idx:
        groups.setdefault(int(owner[i]), []).append(i)
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


def _worker(conn: Any, envs: dict[int, gym.Env], channel: _StepChannel | None) -> None:
    while True:
        try:
            msg = conn.recv() if channel is None else channel.next_message(conn)
        except (EOFError, OSError):  # parent gone
            break
        if msg is None:  # a step in shared memory
            channel.serve(envs, conn)  # type: ignore[union-attr]
            continue
        cmd, payload = msg
        if cmd == "wake":
            continue
        if cmd == "close":
            for env in envs.values():
                env.close()
            conn.send(("ok", None))
            break
        try:
            conn.send(("ok", _do(envs, cmd, payload)))
        except Exception as exc:  # sent back and raised again in the parent
            _send_error(conn, exc)
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

    def __init__(self, envs: list[gym.Env], workers: int, spin: bool | None = None,
                 policy: ChunkPolicy | None = None) -> None:  # fmt: skip
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
        self._channels: dict[int, _StepChannel] = {}
        ctx = mp.get_context("fork")
        rows_split = policy is not None  # until a chunk's runner or channel cannot take its rows
        for k, chunk in enumerate(chunks[1:], 1):
            self._owner[chunk] = k
            parent, child = ctx.Pipe()
            channel = _StepChannel(envs[chunk[0]], chunk) if (
                SPIN_HANDOFF if spin is None else spin) else None  # fmt: skip
            if channel is not None:
                self._channels[k] = channel
            if policy is not None and rows_split:
                rows_split = channel is not None and channel.add_policy(policy, len(chunk))
            proc = ctx.Process(target=_worker, args=(child, {i: envs[i] for i in chunk}, channel),
                               daemon=True, name=f"bfm-gym-latent-vec-{k}")  # fmt: skip
            proc.start()
            child.close()
            self._conns[k], self._procs = parent, [*self._procs, proc]
        self._local_runner: Any = None  # this process's runner for the first chunk's rows
        if policy is not None and rows_split:
            self._local_runner = _independent_runner(policy, len(chunks[0]))
        self._policy = policy if self._local_runner is not None else None
        self._closed = False

    @property
    def computes_actions(self) -> bool:
        """Whether :meth:`act_and_step` runs: every worker computes its own envs' policy rows."""
        return self._policy is not None

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
        posted: dict[int, bool] = {}  # worker -> its step went through shared memory
        for k, (ids, acts) in by_worker.items():
            if k:
                channel = self._channels.get(k)
                posted[k] = channel is not None and channel.post(ids, acts, want_state)
                if posted[k]:
                    if channel.ctrl[_SLEEPING]:  # type: ignore[union-attr]
                        self._conns[k].send(("wake", None))
                else:
                    self._conns[k].send(("step", (ids, acts, want_state)))
        results: dict[int, StepResult] = {}
        if 0 in by_worker:  # our own chunk while the workers step theirs
            ids, acts = by_worker[0]
            results.update(zip(ids, _step_envs(self._local, ids, acts, want_state), strict=True))
        for k, (ids, _) in by_worker.items():
            if k:
                channel = self._channels.get(k)
                if posted[k] and channel.wait(self._procs[k - 1].is_alive):  # type: ignore[union-attr]
                    results.update(zip(ids, channel.results(ids, want_state), strict=True))  # type: ignore[union-attr]
                else:
                    results.update(zip(ids, self._recv(k), strict=True))
        return [results[i] for i in idx]

    def act_and_step(self, idx: list[int], obs: np.ndarray, z: np.ndarray, want_state: bool,
                     ) -> tuple[list[np.ndarray], list[StepResult]] | None:  # fmt: skip
        """Computes the envs' actions from the rows ``obs`` and ``z`` (every env's, in env
        order) and steps them: each process evaluates the policy rows of its own chunk, so the
        forward is split like the simulators. Returns the env actions and the step results of
        ``idx``, or None (nothing done) when a step cannot go this way (states asked of envs
        whose states do not fit the rows)."""
        policy = self._policy
        assert policy is not None
        by_worker = _ids_by_owner(self._owner, idx)
        if any(k and not self._channels[k].carries(want_state) for k in by_worker):
            return None
        for k, ids in by_worker.items():
            if k:
                channel = self._channels[k]
                channel.post_rows(ids, obs, z, want_state)
                if channel.ctrl[_SLEEPING]:
                    self._conns[k].send(("wake", None))
        acts: dict[int, np.ndarray] = {}
        results: dict[int, StepResult] = {}
        if 0 in by_worker:  # our own chunk's rows and simulators while the workers do theirs
            ids = by_worker[0]
            runner, m = self._local_runner, len(self._local)
            runner.obs[:] = obs[:m]
            runner.z[:] = z[:m]
            rows = runner()
            mine = [policy.to_env(rows[i]) for i in ids]
            acts.update(zip(ids, mine, strict=True))
            results.update(zip(ids, _step_envs(self._local, ids, mine, want_state), strict=True))
        for k, ids in by_worker.items():
            if k:
                channel = self._channels[k]
                if channel.wait(self._procs[k - 1].is_alive):
                    out, theirs = channel.results(ids, want_state), channel.actions(ids)
                else:
                    out, theirs = self._recv(k)
                results.update(zip(ids, out, strict=True))
                acts.update(zip(ids, theirs, strict=True))
        return [acts[i] for i in idx], [results[i] for i in idx]

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


# -- the shared-memory step channel of a worker process ----------------------------------------

SPIN_HANDOFF = platform.machine().lower() in ("x86_64", "amd64")
"""Whether worker processes take their steps through shared memory, both sides spinning. The
results are published with plain stores, in order, then a counter: x86-64 keeps stores in
order (and loads in order), so the reader that sees the counter sees the results. Other CPUs
may reorder them and use the pipe for every step."""

_SPIN_S = 0.005
"""How long a worker spins for its next step before it sleeps on the pipe (seconds): longer
than the gap between two low-level steps (the policy forward and the bookkeeping), short
enough that a vector env left alone does not keep a core busy."""

_SLEEP_POLL_S = 0.002
"""A sleeping worker wakes at least this often to look at the step counter (the parent also
sends a wake-up message when it sees the sleeping flag; this bounds a wake-up that crosses it)."""

_STEP, _DONE, _SLEEPING, _COUNT, _WANT_STATE, _VIA_PIPE, _ACT_DTYPE, _POLICY = range(8)
_HEADER = 8
_ACT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class _StepChannel:
    """Shared memory through which one worker process gets its envs' actions and returns their
    step results: a header of counters, the envs' global indices, and one row per env of its
    chunk for the action, the observation, the reward, the two flags and (for transition
    records with states) the simulator state.

    A step goes this way when every action is a float32 or float64 array of the action space's
    shape, and comes back this way when every observation is an array of the observation space's
    shape and dtype and every info is empty (dm_control and MuJoCo envs); otherwise the worker
    sends that step's results through the pipe, as without the channel, and says so in the
    header. Rows are copied in and out byte for byte, so results are the same either way."""

    def __init__(self, env: gym.Env, chunk: list[int]) -> None:
        self.first, n = chunk[0], len(chunk)
        self.act_shape = tuple(env.action_space.shape or ())
        space = env.observation_space
        obs = (space.dtype, (n, *space.shape)) if isinstance(space, gym.spaces.Box) else None
        try:
            dim = _state(env).shape
        except Exception:  # no get_state(): state records go through the pipe
            dim = ()
        state = (np.float64, (n, dim[0])) if len(dim) == 1 else None
        specs = [(np.int64, (_HEADER + n,)), (np.float64, (n,)), (np.bool_, (n, 2)),
                 obs or (np.uint8, (1,)), state or (np.uint8, (1,))]
        specs += [(d, (n, *self.act_shape)) for d in _ACT_DTYPES]
        self._memory = _SharedMemory(specs)
        arrays = self._memory.arrays
        self.ctrl, self.reward, self.flags = arrays[0], arrays[1], arrays[2]
        self.obs: np.ndarray | None = arrays[3] if obs else None
        self.state: np.ndarray | None = arrays[4] if state else None
        self.acts = arrays[5:]
        self.posted = 0  # the parent's step counter
        self.policy: ChunkPolicy | None = None
        self._runner: Any = None  # the worker's runner for this chunk's rows
        self.pi_obs: np.ndarray | None = None  # (n, obs_dim) policy inputs, float32
        self.pi_z: np.ndarray | None = None  # (n, z_dim)

    def add_policy(self, policy: ChunkPolicy, n: int) -> bool:
        """Lets the worker compute this chunk's actions (rows for pi's inputs in a second
        mapping, a runner built here, before the fork). False (nothing added) when the step
        results cannot come back through the rows."""
        runner = _independent_runner(policy, n) if self.obs is not None else None
        if runner is None:
            return False
        dims = (runner.obs.shape[1], runner.z.shape[1])
        self._pi_memory = _SharedMemory([(np.float32, (n, dims[0])), (np.float32, (n, dims[1]))])
        self.pi_obs, self.pi_z = self._pi_memory.arrays
        self.policy, self._runner = policy, runner
        return True

    # parent side
    def carries(self, want_state: bool) -> bool:
        """Whether a step's results (with states when ``want_state``) fit the rows."""
        return self.obs is not None and (not want_state or self.state is not None)

    def post(self, idx: list[int], actions: list[np.ndarray], want_state: bool) -> bool:
        """Writes a step for the worker; False (nothing written) when it cannot go this way."""
        if not self.carries(want_state):
            return False
        code = None
        for a in actions:
            if not (isinstance(a, np.ndarray) and a.shape == self.act_shape
                    and a.dtype in _ACT_DTYPES):  # fmt: skip
                return False
            c = _ACT_DTYPES.index(a.dtype)
            if code is not None and c != code:
                return False
            code = c
        ctrl, rows = self.ctrl, self.acts[code or 0]
        for j, (i, a) in enumerate(zip(idx, actions, strict=True)):
            ctrl[_HEADER + j] = i
            rows[i - self.first] = a
        ctrl[_COUNT], ctrl[_WANT_STATE], ctrl[_ACT_DTYPE] = len(idx), want_state, code or 0
        ctrl[_POLICY] = 0
        self.posted += 1
        ctrl[_STEP] = self.posted  # published last
        return True

    def post_rows(self, idx: list[int], obs: np.ndarray, z: np.ndarray, want_state: bool) -> None:
        """Writes a step whose actions the worker computes from this chunk's rows of pi's
        inputs ``obs`` and ``z`` (every env's rows, in env order)."""
        ctrl, lo = self.ctrl, self.first
        hi = lo + self.pi_obs.shape[0]  # type: ignore[union-attr]
        self.pi_obs[:] = obs[lo:hi]  # type: ignore[index]
        self.pi_z[:] = z[lo:hi]  # type: ignore[index]
        for j, i in enumerate(idx):
            ctrl[_HEADER + j] = i
        ctrl[_COUNT], ctrl[_WANT_STATE], ctrl[_POLICY] = len(idx), want_state, 1
        self.posted += 1
        ctrl[_STEP] = self.posted  # published last

    def actions(self, idx: list[int]) -> list[np.ndarray]:
        """The env actions the worker computed and wrote in the rows (after :meth:`wait`)."""
        rows = self.acts[int(self.ctrl[_ACT_DTYPE])]
        return [rows[i - self.first].copy() for i in idx]

    def wait(self, alive: Callable[[], bool]) -> bool:
        """Spins until the worker has answered the posted step; True when the results are in
        the rows, False when they (or an error) come through the pipe."""
        ctrl, posted, spins = self.ctrl, self.posted, 0
        while ctrl[_DONE] != posted:
            spins += 1
            if spins & 1023 == 0:
                if not alive():
                    return False  # the pipe read reports the dead worker
                if spins > 16384:
                    time.sleep(0)  # let a worker that shares this core run
        return not ctrl[_VIA_PIPE]

    def results(self, idx: list[int], want_state: bool) -> list[StepResult]:
        obs, reward, flags, state = self.obs, self.reward, self.flags, self.state
        assert obs is not None
        out = []
        for i in idx:
            j = i - self.first
            out.append((obs[j].copy(), float(reward[j]), bool(flags[j, 0]), bool(flags[j, 1]), {},
                        state[j].copy() if want_state and state is not None else None))
        return out

    # worker side
    def serve(self, envs: dict[int, gym.Env], conn: Any) -> None:
        """Steps the posted envs and answers, in the rows or through the pipe."""
        ctrl = self.ctrl
        m, want_state = int(ctrl[_COUNT]), bool(ctrl[_WANT_STATE])
        idx = [int(i) for i in ctrl[_HEADER:_HEADER + m]]
        own_policy = bool(ctrl[_POLICY])
        try:
            if own_policy:
                actions = self._actions(idx)
            else:
                rows = self.acts[int(ctrl[_ACT_DTYPE])]
                actions = [rows[i - self.first].copy() for i in idx]
            out = _step_envs(envs, idx, actions, want_state)
            if own_policy and not self._keep_actions(idx, actions):
                conn.send(("ok", (out, actions)))
                ctrl[_VIA_PIPE] = 1
            elif self._fits(out, want_state):
                for i, (o, r, te, tr, _, s) in zip(idx, out, strict=True):
                    j = i - self.first
                    self.obs[j] = o  # type: ignore[index]
                    self.reward[j] = r
                    self.flags[j, 0], self.flags[j, 1] = bool(te), bool(tr)
                    if s is not None:
                        self.state[j] = s  # type: ignore[index]
                ctrl[_VIA_PIPE] = 0
            else:
                conn.send(("ok", (out, actions) if own_policy else out))
                ctrl[_VIA_PIPE] = 1
        except Exception as exc:  # sent back and raised again in the parent
            _send_error(conn, exc)
            ctrl[_VIA_PIPE] = 1
        ctrl[_DONE] = ctrl[_STEP]  # published last

    def _actions(self, idx: list[int]) -> list[np.ndarray]:
        """This chunk's env actions from pi's rows, computed here in the worker."""
        runner, policy = self._runner, self.policy
        assert policy is not None
        runner.obs[:] = self.pi_obs
        runner.z[:] = self.pi_z
        rows = runner()
        return [policy.to_env(rows[i - self.first]) for i in idx]

    def _keep_actions(self, idx: list[int], actions: list[np.ndarray]) -> bool:
        """Writes the computed actions in the rows for the parent; False when they do not fit."""
        dtype = actions[0].dtype if actions else _ACT_DTYPES[0]
        if dtype not in _ACT_DTYPES or any(
            a.dtype != dtype or a.shape != self.act_shape for a in actions
        ):
            return False
        code = _ACT_DTYPES.index(dtype)
        rows = self.acts[code]
        for i, a in zip(idx, actions, strict=True):
            rows[i - self.first] = a
        self.ctrl[_ACT_DTYPE] = code
        return True

    def _fits(self, out: list[StepResult], want_state: bool) -> bool:
        obs, state = self.obs, self.state
        assert obs is not None
        for o, r, _, _, info, s in out:
            if not (type(info) is dict and not info and isinstance(o, np.ndarray)
                    and o.shape == obs.shape[1:] and o.dtype == obs.dtype
                    and isinstance(r, (float, int, np.floating, np.integer))):  # fmt: skip
                return False
            if want_state and not (state is not None and s is not None
                                   and s.shape == state.shape[1:]):  # fmt: skip
                return False
        return True

    def next_message(self, conn: Any) -> Any:
        """Waits for the next step (returns None) or pipe message (returns it): spins for
        :data:`_SPIN_S`, then sleeps on the pipe, flagged so that the parent wakes it. A step
        is new while the step counter differs from the done counter, which only this side
        (the worker) writes."""
        ctrl, spins = self.ctrl, 0
        seen = int(ctrl[_DONE])
        deadline = time.perf_counter() + _SPIN_S
        while ctrl[_STEP] == seen:
            spins += 1
            if spins & 255 == 0:
                if conn.poll():
                    return conn.recv()
                if time.perf_counter() > deadline:
                    break
        else:
            return None
        ctrl[_SLEEPING] = 1
        try:
            while ctrl[_STEP] == seen:
                if conn.poll(_SLEEP_POLL_S):
                    return conn.recv()
            return None
        finally:
            ctrl[_SLEEPING] = 0


class _SharedMemory:
    """Arrays carved out of one anonymous shared mapping that forked processes inherit. Each
    channel has its own mapping, never reused while any process maps it (the multiprocessing
    heap would hand a freed block to the next channel while the old worker still reads it)."""

    def __init__(self, specs: list[tuple[Any, tuple[int, ...]]]) -> None:
        sizes = [int(np.prod(shape)) * np.dtype(dtype).itemsize for dtype, shape in specs]
        offsets = np.cumsum([0] + [-(-size // 64) * 64 for size in sizes])  # 64-byte aligned
        self._map = mmap.mmap(-1, max(64, int(offsets[-1])))
        self.arrays = [
            np.frombuffer(self._map, dtype=dtype, count=int(np.prod(shape)),
                          offset=int(off)).reshape(shape)
            for (dtype, shape), off in zip(specs, offsets[:-1], strict=True)
        ]  # fmt: skip


def _send_error(conn: Any, exc: BaseException) -> None:
    try:
        conn.send(("error", (exc, traceback.format_exc())))
    except Exception:  # an exception that does not pickle
        conn.send(("error", (RuntimeError(f"{type(exc).__name__}: {exc}"),
                             traceback.format_exc())))
