"""``LatentActionVectorEnv``: N inner envs acting in latent space, one batched pi forward per step.

It behaves like ``gymnasium.vector.SyncVectorEnv`` over N :class:`LatentActionWrapper` s (same
observations, rewards, flags and infos for the same seeds; a test checks it), but evaluates the
policy once per low-level step for all N envs instead of N times. ``gym.make_vec`` on a latent id
(``bfm_gym/walker-run-latent-v0``) builds one through the ``vector_entry_point``.

Autoreset follows Gymnasium 1.x. The default, and ``SyncVectorEnv``'s default in gymnasium 1.4,
is ``AutoresetMode.NEXT_STEP``: when sub-env i ends (terminated or truncated) at one ``step``,
the *next* ``step`` resets it instead of stepping it, ignores its action, and returns its first
observation with reward 0, ``terminated = truncated = False`` and the reset info (no ``"z"`` or
``"transitions"`` for that env: the mask ``info["_z"][i]`` is False).
``AutoresetMode.SAME_STEP`` resets in the same step and puts the last observation/info in
``info["final_obs"]``/``info["final_info"]``; ``AutoresetMode.DISABLED`` leaves resets to the
caller (``reset(options={"reset_mask": mask})``).

``gym.make_vec(id, vectorization_mode="sync")`` gives a ``SyncVectorEnv`` of single wrappers
(one forward per env). ``"async"`` forks worker processes; with the default ``fork`` start
method, a worker hangs at its first torch op when the parent already ran torch ops on more than
one thread (a PyTorch/OpenMP limitation, not specific to bfm_gym): pass
``vector_kwargs={"context": "spawn"}`` (or call ``torch.set_num_threads(1)`` first).

A hold of k low-level steps runs the envs in lock step: at each low-level step, one forward
over all N rows, then every env still in its hold steps once; an env whose episode ends stops
early while the others finish their hold.

Parallel simulators: ``workers=k`` (default 1: every env steps here, one after the other)
splits the envs in k contiguous chunks that step at the same time
(:mod:`bfm_gym.wrappers._pool`).
``parallel="processes"`` (default): the first chunk stays here and one worker process is
forked per other chunk, each low-level step handed over through shared memory on x86-64
(both processes spin on a step counter while the worker is busy or just finished; it sleeps
after 5 ms without a step) and through a pipe elsewhere. With the shared memory, ``exact=True``
and a runner whose rows are bitwise independent of the batch (``independent_rows``: the numpy
path), each process also computes its own chunk's policy rows, so the forward is split like
the simulators; otherwise it is one batched call here. ``self.envs``
then holds this process's copies, which only the first chunk's envs keep up to date (reach
the live envs through :meth:`call`, :meth:`get_attr` and :meth:`set_attr`), and rendering
needs ``workers=1`` or threads. Forked workers run only the inner envs (checked after
multi-threaded torch ops in this process); an inner env whose own step runs torch ops could
hang in a forked worker, as ``"async"`` above: use threads for such envs.
``parallel="threads"``: the policy forward is one batched call here; the first chunk steps
in the calling thread, each other chunk in a thread of its own; MuJoCo releases the GIL while
it integrates, so the chunks' physics can overlap while their Python code takes turns. The
envs stay in this process (``self.envs`` are the live envs; rendering works).
Either way the results are the same, bit for bit, as with ``workers=1`` and as N separate
:class:`LatentActionWrapper` s (tested) when the policy runs on the numpy path (actors up to
2^21 weights: every shipped model, the 512-wide ``walker`` included) with ``exact=True`` (the
default). ``exact=False`` trades that for speed: the numpy path evaluates all envs' rows as
one matrix product per layer (a vector-matrix product per row is what makes a row's action
independent of the batch), about half the forward's time at 8 envs, with actions equal to a
single wrapper's up to float32 rounding. A larger actor runs on
torch, whose batched products round differently for different batch sizes: then the vector
env matches separate wrappers only up to float32 rounding of the actions, and trajectories
part after a while (``workers=k`` still equals ``workers=1`` bit for bit). On the 2-core
AVX2 VM with both cores idle, 8 envs against 8 separate wrappers (paired rounds,
``benchmarks/wrapper_throughput.py --only-vector``, three runs; README, Measurements):
``workers=2`` with processes 1.59-1.95x on walker with the small ``cpu`` actor (``workers=1``:
1.33-1.37x; threads: 1.40-1.53x, their GIL hand-offs cost what the overlapped physics gains),
1.89-1.98x on the maze (1.68-1.77x), 2.46-2.64x with the shipped 512-wide walker
(1.64-1.79x); the workers' own policy rows gain 8 % over the forward in this process with the
shipped walker, nothing measurable with the small actor (``--only-split``). Workers need idle
cores: a spinning process that shares its core with the worker slows both. ``workers="auto"``
takes one worker per CPU this process may use that the load average leaves idle (at most N and
4; 1 when none is idle).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from bfm_gym.wrappers._pool import ChunkPolicy, LocalPool, ProcessPool, ThreadPool
from bfm_gym.wrappers.latent import (
    HoldTransitions,
    InnerEnvSpec,
    LatentEnvFacts,
    RewardFn,
    ZHold,
    _as_rows,
    _closed_message,
    _no_state_reset_message,
    _resolve_reward_fn,
    grow_buffers,
    resolve_model,
)

if TYPE_CHECKING:
    import os

    from bfm_gym.models.protocol import BFM

__all__ = ["LatentActionVectorEnv", "make_latent_vector_env"]


class LatentActionVectorEnv(LatentEnvFacts, VectorEnv):
    """N inner envs driven by one BFM; the batched action is one latent action per env.

    Args:
        envs: The inner envs, or thunks that build them (all with the same spaces).
        model: Shipped name, model folder or loaded BFM (loaded once, shared by all envs).
        z_hold: Low-level steps per latent action (``"episode"``: one per episode).
        action_map: ``"sphere"`` or ``"raw"``; see :class:`LatentActionWrapper`.
        strict: Reject out-of-box actions instead of clipping them (warned once).
        reward_fn: ``reward_fn(obs, action, next_obs, info) -> float`` or ``"module:function"``.
        record_state: Simulator states in the infos (``"state"``, ``transitions.next_state``).
        record_transitions: :class:`HoldTransitions` in ``info["transitions"]`` (an object
            array of N, masked by ``info["_transitions"]``).
        device: Where to load the model from a name or path.
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default, as ``SyncVectorEnv``),
            ``SAME_STEP`` or ``DISABLED``.
        workers: How many chunks of envs step at the same time: 1 (default, all here, one
            after the other), k >= 2, or ``"auto"`` (see the module docstring).
        parallel: With ``workers`` >= 2, ``"processes"`` (default, forked) or ``"threads"``.
        exact: True (default): each env's action is bitwise what a single
            :class:`LatentActionWrapper` computes for the same observation and latent (the
            numpy policy path evaluates the rows one vector-matrix product at a time). False:
            one matrix product per layer for all envs, about twice as fast a forward at 8 envs
            (the vector env of 8 maze envs steps ~1.1x faster), with actions equal to a single
            wrapper's up to float32 rounding (within 1e-5, tested), so trajectories part from
            separate wrappers' after a while. Families whose runner has no
            ``use_matrix_products`` ignore it.

    Example:
        >>> import gymnasium as gym, bfm_gym
        >>> envs = gym.make_vec("bfm_gym/walker-run-latent-v0", num_envs=4, model="walker")  # doctest: +SKIP
        >>> obs, info = envs.reset(seed=0)  # doctest: +SKIP
        >>> obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())  # doctest: +SKIP
    """

    def __init__(
        self,
        envs: Sequence[gym.Env | Callable[[], gym.Env]],
        model: str | os.PathLike[str] | BFM,
        z_hold: ZHold = 1,
        *,
        action_map: Literal["sphere", "raw"] = "sphere",
        strict: bool = False,
        reward_fn: RewardFn | str | None = None,
        record_state: bool = False,
        record_transitions: bool = True,
        device: str = "cpu",
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        workers: int | Literal["auto"] = 1,
        parallel: Literal["processes", "threads"] = "processes",
        exact: bool = True,
    ) -> None:

        if not envs:
            raise ValueError("LatentActionVectorEnv needs at least one env.")
        if not isinstance(exact, (bool, np.bool_)):
            raise ValueError(
                f"LatentActionVectorEnv: exact must be True (bitwise the single wrapper's actions) "
                f"or False (one matrix product per layer, faster); got {exact!r}."
            )
        self.envs = [e if isinstance(e, gym.Env) else e() for e in envs]
        self.num_envs = len(self.envs)
        bfm, _ = resolve_model(model, device=device)
        self._init_latent(self.envs[0], bfm, z_hold=z_hold, action_map=action_map, strict=strict,
                          reward=_resolve_reward_fn(reward_fn)[0], record_state=record_state,
                          record_transitions=record_transitions, batch=self.num_envs,
                          owner="LatentActionVectorEnv", exact=exact)
        for i, env in enumerate(self.envs[1:], 1):
            if env.observation_space != self.envs[0].observation_space or (
                env.action_space != self.envs[0].action_space
            ):
                raise ValueError(
                    f"LatentActionVectorEnv: env {i} has spaces {env.observation_space}, "
                    f"{env.action_space}; env 0 has {self.envs[0].observation_space}, "
                    f"{self.envs[0].action_space}. All envs must have the same spaces."
                )
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self._map.space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = self.envs[0].render_mode
        self.metadata = {
            **getattr(self.envs[0], "metadata", {}),
            "autoreset_mode": self.autoreset_mode,
        }
        k = _check_workers(workers, self.num_envs)
        if parallel not in ("threads", "processes"):
            raise ValueError(
                f"LatentActionVectorEnv: parallel must be 'threads' or 'processes'; got {parallel!r}."
            )
        if k > 1 and parallel == "processes" and self.render_mode is not None:
            raise ValueError(
                f"LatentActionVectorEnv: workers={workers!r} with render_mode="
                f"{self.render_mode!r}: rendering needs workers=1 or parallel='threads'."
            )
        self._pool: LocalPool | ThreadPool | ProcessPool = LocalPool(self.envs)
        if k > 1 and parallel == "threads":
            self._pool = ThreadPool(self.envs, k)
        elif k > 1:
            # with exact=True each process may compute its own envs' policy rows; the pool
            # does when the family's runners say the rows are bitwise the same (independent_rows)
            policy = ChunkPolicy(bfm.policy_runner, self._inner.to_env_action) if exact else None
            self._pool = ProcessPool(self.envs, k, policy=policy)
        self._obs: list[Any] = [None] * self.num_envs
        space = self.single_observation_space
        self._obs_rows_are_batch = (
            isinstance(space, gym.spaces.Box) and space.dtype == np.float32
            and space.shape == self._runner.obs.shape[1:]
        )  # fmt: skip
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._ended = np.ones(self.num_envs, dtype=bool)  # never reset counts as ended
        self._started = False
        self._closed = False

    # -- properties -------------------------------------------------------------------------------


    # -- Gymnasium API ----------------------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets the envs (``seed`` int -> ``seed + i`` for env i, as ``SyncVectorEnv``).

        ``options={"reset_mask": mask}`` resets only the masked envs; other options go to
        every inner env (``{"state": s}`` starts them all from ``s``).
        """
        self._check_open()
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(
                f"If seeds are passed as a list the length must match num_envs={self.num_envs} "
                f"but got length={len(seeds)}."
            )
        options = dict(options) if options else {}
        if "state" in options and not self.supports_state_reset:
            raise ValueError(_no_state_reset_message(self.envs[0]))
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        elif (
            not isinstance(mask, np.ndarray)
            or mask.dtype != np.bool_
            or mask.shape != (self.num_envs,)
            or not mask.any()
        ):
            raise ValueError(
                f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with at "
                f"least one True; got {mask!r}."
            )
        elif not self._started:
            raise ValueError("reset(options={'reset_mask': ...}) needs a full reset() first.")
        infos: dict[str, Any] = {}
        for i in np.flatnonzero(mask):
            obs, info = self._pool.run(i, "reset", (i, seeds[i], options or None))
            infos = self._add_info(infos, self._reset_info(i, info), i)
            self._set_obs(i, obs)
            self._autoreset[i] = False
            self._ended[i] = False
        self._started = True
        return self._batched_obs(), infos

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One latent action per env, held for ``z_hold`` low-level steps in each env.

        Raises:
            ValueError: NaN/inf, wrong shape or dtype, or (strict) out-of-box actions; the
                message names what was received and what is expected.
            gymnasium.error.ResetNeeded: Called before ``reset()`` (or, with
                ``AutoresetMode.DISABLED``, on an env that ended and was not reset).
        """
        self._check_open()
        if not self._started:
            raise gym.error.ResetNeeded(
                "LatentActionVectorEnv.step() was called before reset(); call reset(seed=...) first."
            )
        n = self.num_envs
        a = _as_rows(actions, self._map, batch=n)
        infos: dict[str, Any] = {}
        mode = self.autoreset_mode
        stepping = [True] * n
        if mode == AutoresetMode.NEXT_STEP:
            for i in np.flatnonzero(self._autoreset).tolist():
                obs, info = self._pool.run(i, "reset", (i, None, None))
                self._set_obs(i, obs)
                infos = self._add_info(infos, self._reset_info(i, info), i)
                stepping[i] = False
                self._ended[i] = False
        elif mode == AutoresetMode.DISABLED and self._ended.any():
            raise gym.error.ResetNeeded(
                f"LatentActionVectorEnv.step(): envs {np.flatnonzero(self._ended).tolist()} ended "
                "and autoreset is disabled; call reset(options={'reset_mask': mask}) first."
            )
        runner = self._runner
        z_out = self._map.to_z(a, out=runner.z).copy()
        stepped = [i for i in range(n) if stepping[i]]
        rec = (
            _BatchRecorder(self._inner, n, self._hold, self._record_state)
            if self._record_transitions and stepped
            else None
        )
        rewards, counts = [0.0] * n, [0] * n
        term, trunc = [False] * n, [False] * n
        last_info: list[dict[str, Any]] = [{}] * n
        pool, obs_list, obs_rows = self._pool, self._obs, runner.obs
        reward_fn, to_env, hold = self._reward_fn, self._inner.to_env_action, self._hold
        want_state = rec is not None and self._record_state
        active = stepped
        split = isinstance(pool, ProcessPool) and pool.computes_actions
        while active:
            # every process evaluates its own envs' rows and steps them
            done = pool.act_and_step(active, obs_rows, runner.z, want_state) if split else None
            if done is not None:
                env_acts, results = done
            else:
                acts = runner()  # one batched forward for every env still in its hold
                env_acts = [to_env(acts[i]) for i in active]
                results = pool.step(active, env_acts, want_state)  # simulators, maybe in parallel
            still = []
            for i, act, (next_obs, r, te, tr, info, state) in zip(
                active, env_acts, results, strict=True
            ):
                obs = obs_list[i]
                if reward_fn is not None:
                    r = reward_fn(obs, act, next_obs, info)
                r = float(r)
                rewards[i] += r
                if rec is not None:
                    rec.add(i, counts[i], state, obs, act, r, next_obs, te, tr)
                obs_list[i] = next_obs
                obs_rows[i] = next_obs
                last_info[i] = info
                counts[i] += 1
                if te or tr:
                    term[i], trunc[i] = bool(te), bool(tr)
                elif counts[i] != hold:
                    still.append(i)
            active = still
        reported = []  # envs whose hold is reported at the top level of the infos
        for i in stepped:
            ended = term[i] or trunc[i]
            if ended and mode == AutoresetMode.SAME_STEP:
                final = self._hold_info(i, last_info[i], z_out, counts, rec)
                infos = self._add_info(infos, {"final_obs": obs_list[i], "final_info": final}, i)
                obs, info = pool.run(i, "reset", (i, None, None))
                self._set_obs(i, obs)
                infos = self._add_info(infos, self._reset_info(i, info), i)
                ended = False
            else:
                if last_info[i]:
                    infos = self._add_info(infos, last_info[i], i)
                reported.append(i)
            self._ended[i] = ended
        if reported:
            infos = self._add_hold_infos(infos, reported, z_out, counts, rec)
        terminated, truncated = np.array(term, dtype=bool), np.array(trunc, dtype=bool)
        self._autoreset = terminated | truncated
        return self._batched_obs(), np.array(rewards), terminated, truncated, infos

    def _hold_info(
        self,
        i: int,
        inner_info: dict[str, Any],
        z: np.ndarray,
        counts: list[int],
        rec: _BatchRecorder | None,
    ) -> dict[str, Any]:
        """Env i's info as a single :class:`LatentActionWrapper` would return it."""
        info = {**inner_info, "z": z[i].copy(), "hold_steps": counts[i]}
        if rec is not None:
            info["transitions"] = rec.result(i, counts[i])
        if self._record_state:
            info["state"] = self._pool.run(i, "state", i)
        return info

    def _add_hold_infos(
        self,
        infos: dict[str, Any],
        idx: list[int],
        z: np.ndarray,
        counts: list[int],
        rec: _BatchRecorder | None,
    ) -> dict[str, Any]:
        """Adds ``z``, ``hold_steps``, ``transitions`` (and ``state``) of the envs ``idx`` as
        ``VectorEnv._add_info`` would, built directly (arrays with ``_key`` masks)."""
        n = self.num_envs
        ours = ("z", "hold_steps", "transitions", "state")
        if any(k in infos for k in ours):  # an inner info used our keys: merge generically
            for i in idx:
                infos = self._add_info(infos, self._hold_info(i, {}, z, counts, rec), i)
            return infos
        if len(idx) == n:  # every env (the common case): no masked copies
            mask = np.ones(n, dtype=bool)
            z_arr = z.copy()
            holds = np.array(counts, dtype=int)
        else:
            mask = np.zeros(n, dtype=bool)
            mask[idx] = True
            z_arr = np.zeros_like(z)
            z_arr[idx] = z[idx]
            holds = np.zeros(n, dtype=int)
            holds[idx] = [counts[i] for i in idx]
        infos["z"], infos["_z"] = z_arr, mask
        infos["hold_steps"], infos["_hold_steps"] = holds, mask.copy()
        if rec is not None:
            transitions = np.full(n, None, dtype=object)
            for i in idx:
                transitions[i] = rec.result(i, counts[i])
            infos["transitions"], infos["_transitions"] = transitions, mask.copy()
        if self._record_state:
            states = [self._pool.run(i, "state", i) for i in idx]
            arr = np.zeros((n, *states[0].shape), dtype=states[0].dtype)
            arr[idx] = states
            infos["state"], infos["_state"] = arr, mask.copy()
        return infos

    def render(self) -> tuple[Any, ...]:
        """The frames of every inner env."""
        return tuple(self._pool.run(i, "render", i) for i in range(self.num_envs))

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Calls (or reads) ``name`` on every inner env, through its wrappers."""
        return tuple(
            self._pool.run(i, "call", (i, name, args, kwargs)) for i in range(self.num_envs)
        )

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """``name`` of every inner env."""
        return self.call(name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Sets ``name`` on every inner env (one value, or one per env)."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"Got {len(values)} values for {self.num_envs} environments.")
        for i, value in enumerate(values):
            self._pool.run(i, "set_attr", (i, name, value))

    def close_extras(self, **kwargs: Any) -> None:
        """Closes every inner env."""
        if not self._closed:
            self._closed = True
            self._pool.close()

    # -- helpers ----------------------------------------------------------------------------------

    def _set_obs(self, i: int, obs: Any) -> None:
        self._obs[i] = obs
        self._runner.obs[i] = obs

    def _batched_obs(self) -> np.ndarray:
        rows = self._runner.obs  # float32 (n, obs_dim): every env's observation, as pi reads it
        if self._obs_rows_are_batch:  # the same values as stacking them: one copy, no stack
            return rows.copy()
        return np.stack(self._obs).astype(self.single_observation_space.dtype, copy=False)

    def _reset_info(self, i: int, info: dict[str, Any]) -> dict[str, Any]:
        if self._record_state:
            return {**info, "state": self._pool.run(i, "state", i)}
        return info

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(_closed_message("LatentActionVectorEnv"))


class _BatchRecorder:
    """The transitions of a hold for every env, in ``(num_envs, hold, ...)`` arrays allocated
    once per step (grown for ``"episode"``); env i's :class:`HoldTransitions` are views."""

    def __init__(self, inner: InnerEnvSpec, n: int, hold: int, record_state: bool) -> None:
        cap = hold if hold > 0 else 1024
        self.obs = np.empty((n, cap, *inner.obs_shape), inner.obs_dtype)
        self.action = np.empty((n, cap, inner.action_dim), np.float32)
        self.reward = np.empty((n, cap), np.float64)
        self.next_obs = np.empty((n, cap, *inner.obs_shape), inner.obs_dtype)
        self.terminated = np.empty((n, cap), bool)
        self.truncated = np.empty((n, cap), bool)
        self.next_state: np.ndarray | None = np.empty((n, cap, 0)) if record_state else None

    def add(
        self, i: int, k: int, state: np.ndarray | None, obs: Any, a: np.ndarray, r: float,
        next_obs: Any, term: Any, trunc: Any,
    ) -> None:  # fmt: skip
        if k == self.reward.shape[1]:
            self._grow()
        self.obs[i, k] = obs
        self.action[i, k] = a
        self.reward[i, k] = r
        self.next_obs[i, k] = next_obs
        self.terminated[i, k] = term
        self.truncated[i, k] = trunc
        if self.next_state is not None and state is not None:
            s = state
            if self.next_state.shape[2] != s.shape[0]:
                self.next_state = np.empty((*self.reward.shape, s.shape[0]))
            self.next_state[i, k] = s

    def _grow(self) -> None:
        grow_buffers(self, axis=1)

    def result(self, i: int, k: int) -> HoldTransitions:
        return HoldTransitions._of_views(
            self.obs[i, :k],
            self.action[i, :k],
            self.reward[i, :k],
            self.next_obs[i, :k],
            self.terminated[i, :k],
            self.truncated[i, :k],
            None if self.next_state is None else self.next_state[i, :k],
        )


def _check_workers(workers: Any, num_envs: int) -> int:
    """The number of processes for ``workers`` (an int >= 1 or ``"auto"``)."""
    if workers == "auto":
        import os

        from bfm_gym.models.runtime import usable_cores

        idle = int(usable_cores() - os.getloadavg()[0])
        return max(1, min(idle, num_envs, 4))
    if isinstance(workers, (int, np.integer)) and not isinstance(workers, bool) and workers >= 1:
        return min(int(workers), num_envs)
    raise ValueError(
        f"LatentActionVectorEnv: workers must be an int >= 1 or 'auto'; got {workers!r}."
    )


def make_latent_vector_env(
    num_envs: int = 1,
    domain: str = "walker",
    task: str | None = None,
    *,
    model: Any = None,
    goal: Sequence[float] | None = None,
    z_hold: ZHold = 1,
    render_mode: str | None = None,
    render_kwargs: dict[str, Any] | None = None,
    max_inner_steps: int | None = None,
    **kwargs: Any,
) -> LatentActionVectorEnv:
    """Vector entry point of the latent ids: ``num_envs`` bfm_gym envs, one shared model.

    Arguments are those of :func:`~bfm_gym.wrappers.registration.make_latent_env`, plus
    ``autoreset_mode``.
    """
    from bfm_gym.wrappers.registration import make_inner_env

    bfm, _ = resolve_model(
        domain if model is None else model, device=kwargs.get("device", "cpu"), domain=domain
    )
    kw = {"goal": goal, "render_mode": render_mode, "max_inner_steps": max_inner_steps}
    envs = [
        make_inner_env(domain, task, render_kwargs=deepcopy(render_kwargs), **kw)
        for _ in range(num_envs)
    ]
    return LatentActionVectorEnv(envs, bfm, z_hold, **kwargs)
