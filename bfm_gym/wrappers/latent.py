"""``LatentActionWrapper``: a BFM as a Gymnasium env whose action is the task latent z.

The agent acting on the wrapper picks z; the frozen BFM policy ``pi(a | s, z)`` then drives
the wrapped ("inner") environment for ``z_hold`` low-level steps. This is the one place in
bfm_gym where an agent's latent is projected onto the BFM's latent sphere before it reaches
pi (docs/algorithms.md#pitfall-projection).

The action -> z map
-------------------
``action_map="sphere"`` (default): the action space is ``Box(-1, 1, (d,), float32)`` and

    z = proj(a) = sqrt(d) * a / ||a||

(per block of sizes ``bfm.block_sizes``, e.g. for an auto-regressive FB-AWARE model, each block
on its own sphere of radius sqrt(d_k)). The all-zero action, which has no direction, maps to
``z = proj(1, ..., 1)`` (all ones). The map is many-to-one (every positive multiple of ``a``
gives the same z), so what is invertible is its restriction to the unit sphere
``{a : ||a|| = 1}`` (every block of norm sqrt(d_k/d) for an auto-regressive model), which lies
inside the box: there it is a bijection onto the latent sphere, with inverse

    a = z / sqrt(d)           (:meth:`LatentActionWrapper.z_to_action`)

so ``action_to_z(z_to_action(z)) == z`` for every z on the sphere (up to float32 rounding) and
every latent is reachable. Out-of-box actions are clipped to the box first (a one-time
warning), or rejected with ``strict=True``.

``action_map="raw"``: the action is z itself, ``Box(-inf, inf, (d,), float32)``; it is still
projected (so any nonzero vector is accepted, and a z already on the sphere, such as
``BFM.infer_z`` returns, passes unchanged up to float32 rounding). Use it to feed latents from
inference or from an adapter that works in z directly.

Transitions and rewards
-----------------------
``step(action)`` runs ``z_hold`` low-level steps (or until the inner episode ends; ``"episode"``
holds z for the whole episode, so one wrapper step is one episode) and returns the sum of the
low-level rewards. ``info`` holds the inner env's info of the last low-level step plus
``"z"``, ``"hold_steps"``, ``"transitions"`` (:class:`HoldTransitions`) and, with
``record_state=True``, ``"state"``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded

from bfm_gym.utils.imports import resolve_callable

if TYPE_CHECKING:
    from bfm_gym.models.protocol import BFM

__all__ = [
    "UNSAVED_MODEL",
    "HoldTransitions",
    "LatentActionWrapper",
    "RewardFn",
    "ZHold",
    "wrap",
]

ZHold = int | Literal["episode"]
"""How long one latent action is held: a number of low-level steps, or ``"episode"``."""

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray, dict], SupportsFloat]
"""``reward_fn(obs, action, next_obs, info) -> float`` for one low-level transition (``info``
is the inner env's step info). Replaces the inner env's reward."""

UNSAVED_MODEL = "<unsaved BFM>"
"""Recorded as the ``model`` argument when the wrapper was given an in-memory BFM with no known
folder: ``env.spec`` then serialises, but rebuilding it raises an error asking for a path."""

UNIMPORTABLE_REWARD = "<unimportable reward_fn>"
"""Recorded as ``reward_fn`` for a callable that cannot be imported back by name."""

_ZERO_NORM = 1e-12  # below this an action has no direction (F.normalize's clamp)
_HAS_VECDOT = hasattr(np, "vecdot")  # numpy >= 2
_ALL_ACTIONS: tuple[str, ...] = ("sphere", "raw")
_max_reduce = np.maximum.reduce


@dataclasses.dataclass(frozen=True, eq=False)
class HoldTransitions:
    """The low-level transitions of one wrapper step (one row per inner env step).

    Attributes:
        obs: ``(k, obs_dim)`` observations before each low-level step (inner env dtype).
        action: ``(k, action_dim)`` float32 actions sent to the inner env (pi's mean, rescaled
            to the inner action bounds when they are not [-1, 1]).
        reward: ``(k,)`` float64 low-level rewards (the inner env's, or ``reward_fn``'s).
        next_obs: ``(k, obs_dim)`` observations after each low-level step.
        terminated: ``(k,)`` bool.
        truncated: ``(k,)`` bool.
        next_state: ``(k, state_size)`` float64 simulator states after each low-level step,
            with ``record_state=True``; else None.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_state: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    def __eq__(self, other: object) -> bool:
        """Equal when every array is equal (shape, dtype and values; NaN never equal)."""
        if not isinstance(other, HoldTransitions):
            return NotImplemented
        mine, theirs = self.to_dict(), other.to_dict()
        return mine.keys() == theirs.keys() and all(
            a.dtype == theirs[k].dtype and np.array_equal(a, theirs[k]) for k, a in mine.items()
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def _of_views(
        cls, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
        terminated: np.ndarray, truncated: np.ndarray, next_state: np.ndarray | None,
    ) -> HoldTransitions:  # fmt: skip
        """The same object as the constructor's, built without the frozen dataclass's one
        ``object.__setattr__`` per field (the vector env builds one per env and step)."""
        self = object.__new__(cls)
        self.__dict__.update(obs=obs, action=action, reward=reward, next_obs=next_obs,
                             terminated=terminated, truncated=truncated, next_state=next_state)  # fmt: skip
        return self

    def to_dict(self) -> dict[str, np.ndarray]:
        """The arrays by name (``next_state`` only when recorded)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if out["next_state"] is None:
            del out["next_state"]
        return out


class LatentEnvFacts:
    """What the latent wrapper and its vector env both tell about themselves (read-only)."""

    _bfm: BFM
    _z_hold: ZHold
    _inner: InnerEnvSpec

    def _init_latent(self, env: gym.Env, bfm: BFM, *, z_hold: ZHold, action_map: str, strict: bool,
                     reward: RewardFn | None, record_state: bool, record_transitions: bool,
                     batch: int, owner: str, exact: bool = True) -> None:
        """The setup both share: checks the options against ``env`` (the first inner env) and
        keeps them, with the action map and a policy runner for ``batch`` observations."""
        self._bfm = bfm
        self._hold = check_z_hold(z_hold)
        self._z_hold = z_hold
        self._map = ActionMap(bfm, action_map, strict=strict, owner=owner)
        self._inner = InnerEnvSpec.check(env, bfm, owner=owner)
        if record_state and not callable(getattr(env.unwrapped, "get_state", None)):
            raise ValueError(
                f"{owner}: record_state=True needs an inner env with get_state(); "
                f"{type(env.unwrapped).__name__} has none. Use a bfm_gym env, or record_state=False."
            )
        self._reward_fn = reward
        self._record_state = bool(record_state)
        self._record_transitions = bool(record_transitions)
        self._runner = bfm.policy_runner(batch=batch)
        if not exact:  # an optional capability of a family's runner (FB's and HILP's have it)
            switch = getattr(self._runner, "use_matrix_products", None)
            if callable(switch):
                switch()

    @property
    def model(self) -> BFM:
        """The frozen BFM whose policy acts."""
        return self._bfm

    @property
    def z_dim(self) -> int:
        """Latent dimension d."""
        return self._bfm.z_dim

    @property
    def z_hold(self) -> ZHold:
        """Low-level steps per latent action (``"episode"``: the whole episode)."""
        return self._z_hold

    @property
    def supports_state_reset(self) -> bool:
        """Whether ``reset(options={"state": s})`` works (the inner env supports it)."""
        return self._inner.supports_state_reset


class LatentActionWrapper(
    LatentEnvFacts, gym.Wrapper[Any, np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Acts in the BFM's latent space: each action is a task latent z, pi does the rest.

    The observation space is the inner env's; the action space is ``Box(-1, 1, (z_dim,))``
    (``action_map="sphere"``) or ``Box(-inf, inf, (z_dim,))`` (``"raw"``), float32; see the
    module docstring for the action -> z map and its inverse.

    Args:
        env: The inner env: a bfm_gym env (``gym.make("bfm_gym/walker-run-v0")``), a dm_control
            env built with shimmy and flattened in dm_control's native order
            (:class:`~bfm_gym.wrappers.DMCFlattenObservation`), or any Gymnasium env whose
            spaces match the model's (flat ``Box`` observation of size ``obs_dim``, ``Box``
            action of size ``action_dim`` with finite bounds; pi's [-1, 1] actions are
            rescaled to other bounds).
        model: A shipped model name (``"walker"``), a model folder, or a loaded
            :class:`~bfm_gym.models.BFM`. ``env.spec`` records the name or path; for an
            in-memory BFM it records its ``source`` attribute when it has one, else
            :data:`UNSAVED_MODEL`.
        z_hold: Low-level steps per latent action: ``1``, any ``k >= 1``, or ``"episode"``
            (one z for the whole inner episode). A hold stops early when the inner episode
            terminates or truncates.
        action_map: ``"sphere"`` (bounded actions, ``z = proj(a)``) or ``"raw"`` (the action is
            z, still projected).
        strict: Reject out-of-box actions with ``ValueError`` instead of clipping them with a
            one-time warning (``action_map="sphere"`` only; raw actions are unbounded).
        reward_fn: ``reward_fn(obs, action, next_obs, info) -> float`` replacing the inner
            env's reward at every low-level step, or a ``"module:function"`` string naming one.
        record_state: Put the simulator state after the hold in ``info["state"]`` (and the
            state after each low-level step in ``info["transitions"].next_state``); the
            inner env must have ``get_state()``.
        record_transitions: Put :class:`HoldTransitions` in ``info["transitions"]`` (turn off
            to save a few microseconds per step when nobody reads them).
        device: Where to load the model when ``model`` is a name or path.

    Raises:
        ValueError: Spaces that do not match the model (the message names both), a bad
            ``z_hold``/``action_map``, a model of another domain, or an unknown model name
            (the message lists the shipped models).
        TypeError: ``model`` is not a name, path or BFM; ``reward_fn`` is not callable.

    Example:
        >>> import gymnasium as gym, bfm_gym, numpy as np
        >>> from bfm_gym.models import BFM, FBConfig, FBModel, ModelMetadata
        >>> bfm = BFM(FBModel(FBConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6),
        ...           ModelMetadata(domain="walker"))
        >>> env = LatentActionWrapper(gym.make("bfm_gym/walker-run-v0"), bfm, z_hold=4)
        >>> env.action_space
        Box(-1.0, 1.0, (8,), float32)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(np.full(8, 0.5, np.float32))
        >>> info["z"].round(3).tolist() == [1.0] * 8, len(info["transitions"])
        (True, 4)

    Change logs:
        * v0.1.0 - Initially added.
    """

    def __init__(
        self,
        env: gym.Env,
        model: str | os.PathLike[str] | BFM,
        z_hold: ZHold = 1,
        *,
        action_map: Literal["sphere", "raw"] = "sphere",
        strict: bool = False,
        reward_fn: RewardFn | str | None = None,
        record_state: bool = False,
        record_transitions: bool = True,
        device: str = "cpu",
    ) -> None:
        bfm, recorded_model = resolve_model(model, device=device)
        reward, recorded_reward = _resolve_reward_fn(reward_fn)
        from bfm_gym.envs.gym_env import adopt_env

        env = adopt_env(env, bfm)  # a MuJoCo / Dict-observation env of a Gymnasium-env model
        gym.utils.RecordConstructorArgs.__init__(
            self,
            model=recorded_model,
            z_hold=z_hold,
            action_map=action_map,
            strict=strict,
            reward_fn=recorded_reward,
            record_state=record_state,
            record_transitions=record_transitions,
            device=device,
        )
        gym.Wrapper.__init__(self, env)
        self._init_latent(env, bfm, z_hold=z_hold, action_map=action_map, strict=strict, reward=reward,
                          record_state=record_state, record_transitions=record_transitions, batch=1,
                          owner="LatentActionWrapper")
        self.action_space = self._map.space
        self._obs_in = self._runner.obs[0]
        self._z_row = self._runner.z[0]
        self._last_obs: Any = None
        self._z: np.ndarray | None = None
        self._phase: Literal["new", "running", "ended", "closed"] = "new"

    # -- properties -----------------------------------------------------------------------------

    @property
    def z(self) -> np.ndarray | None:
        """The (projected) latent of the last step, ``(z_dim,)`` float32; None before any step."""
        return None if self._z is None else self._z.copy()

    # -- the action <-> z map -------------------------------------------------------------------

    def action_to_z(self, action: Any) -> np.ndarray:
        """The latent an action selects, ``(z_dim,)`` float32 (validated like :meth:`step`)."""
        return self._map.single_to_z(action, np.empty(self.z_dim, np.float32))

    def z_to_action(self, z: Any) -> np.ndarray:
        """The action in the box that selects ``z``: ``z / sqrt(d)`` for ``"sphere"`` (after
        projecting z onto the sphere), ``proj(z)`` for ``"raw"``; ``(z_dim,)`` float32."""
        return self._map.from_z(z)

    # -- Gymnasium API --------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Resets the inner env; ``options={"state": s}`` starts from simulator state ``s``.

        Raises:
            ValueError: A ``"state"`` option for an inner env without state reset.
            RuntimeError: The wrapper was closed.
        """
        if self._phase == "closed":
            raise RuntimeError(_closed_message("LatentActionWrapper"))
        if options and "state" in options and not self.supports_state_reset:
            raise ValueError(_no_state_reset_message(self.env))
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = obs
        self._obs_in[:] = obs
        self._phase = "running"
        if self._record_state:
            info = {**info, "state": np.asarray(self.env.unwrapped.get_state())}
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Runs pi with the latent of ``action`` for up to ``z_hold`` low-level steps.

        Returns:
            The last observation, the summed reward, whether the inner episode terminated or
            truncated during the hold, and ``info`` (see the module docstring).

        Raises:
            ValueError: NaN/inf, wrong shape or dtype, or (``strict=True``) out-of-box action.
            gymnasium.error.ResetNeeded: Called before ``reset()`` or after the episode ended.
            RuntimeError: The wrapper was closed.
        """
        if self._phase != "running":
            _raise_not_running(self._phase, "LatentActionWrapper")
        z = self._map.single_to_z(action, self._z_row)
        self._z = z.copy()
        env, runner, obs_in, inner = self.env, self._runner, self._obs_in, self._inner
        reward_fn, record = self._reward_fn, self._record_transitions
        hold = self._hold
        # one low-level step (z_hold=1, flat observations): the transition's arrays are built
        # directly (~6 numpy calls) instead of through the recorder's buffers (~19)
        single = record and hold == 1 and len(inner.obs_shape) == 1
        rec = _HoldRecorder(inner, hold, self._record_state) if record and not single else None
        obs = obs0 = self._last_obs
        total = 0.0
        n = 0
        terminated = truncated = False
        info: dict[str, Any] = {}
        while True:
            a = inner.to_env_action(runner()[0])
            next_obs, r, terminated, truncated, info = env.step(a)
            if reward_fn is not None:
                r = reward_fn(obs, a, next_obs, info)
            total += float(r)
            if rec is not None:
                rec.add(env, obs, a, r, next_obs, terminated, truncated)
            n += 1
            obs = next_obs
            obs_in[:] = next_obs
            if terminated or truncated or n == hold:
                break
        self._last_obs = obs
        if terminated or truncated:
            self._phase = "ended"
        info = {**info, "z": self._z.copy(), "hold_steps": n}
        if rec is not None:
            info["transitions"] = rec.result()
        state = np.asarray(env.unwrapped.get_state()) if self._record_state else None
        if single:
            dt = inner.obs_dtype
            info["transitions"] = HoldTransitions(
                np.array(obs0, dtype=dt, ndmin=2),
                a.reshape(1, -1),  # a fresh float32 array (to_env_action)
                np.array([r], dtype=np.float64),
                np.array(obs, dtype=dt, ndmin=2),
                np.array([terminated], dtype=bool),
                np.array([truncated], dtype=bool),
                None if state is None else np.array(state, dtype=np.float64, ndmin=2),
            )
        if state is not None:
            info["state"] = state
        return obs, total, bool(terminated), bool(truncated), info

    def get_state(self) -> np.ndarray:
        """The inner env's simulator state (``env.unwrapped.get_state()``).

        Raises:
            AttributeError: The inner env has no ``get_state()``.
        """
        get_state = getattr(self.env.unwrapped, "get_state", None)
        if not callable(get_state):
            raise AttributeError(
                f"The inner env {type(self.env.unwrapped).__name__} has no get_state(); "
                "state capture needs a bfm_gym env (supports_state_reset=True)."
            )
        return np.asarray(get_state())

    def close(self) -> None:
        """Closes the inner env; later calls to ``reset``/``step`` raise ``RuntimeError``."""
        if self._phase != "closed":
            self._phase = "closed"
            super().close()


def wrap(
    env: gym.Env,
    model: str | os.PathLike[str] | BFM | None = None,
    z_hold: ZHold = 1,
    **kwargs: Any,
) -> LatentActionWrapper:
    """``LatentActionWrapper(env, model, z_hold, **kwargs)``; ``model`` defaults to the shipped
    model named after the env's domain (a bfm_gym env knows its domain).

    Example:
        >>> import bfm_gym
        >>> env = bfm_gym.wrap(gym.make("bfm_gym/walker-run-v0"), model="walker")  # doctest: +SKIP

    Raises:
        ValueError: ``model`` was omitted and the env has no ``domain`` attribute, plus
            everything :class:`LatentActionWrapper` raises.
        TypeError: ``env`` is not a Gymnasium env.
    """
    if not isinstance(env, gym.Env):
        raise TypeError(f"wrap(env, ...) needs a Gymnasium env, e.g. wrap(gym.make('bfm_gym/walker-run-v0')); "
                        f"got {type(env).__name__} {env!r}.")
    if model is None:
        domain = getattr(env.unwrapped, "domain", None)
        if not isinstance(domain, str):
            raise ValueError(
                f"wrap(env) cannot tell which model to use: {type(env.unwrapped).__name__} has no "
                "domain. Pass model= a shipped name, a model folder or a loaded BFM."
            )
        model = domain
    return LatentActionWrapper(env, model, z_hold, **kwargs)


# ------------------------------------------------------------------------------------------------
# pieces shared with the vector env
# ------------------------------------------------------------------------------------------------


def resolve_model(model: Any, device: str = "cpu", *, domain: str | None = None) -> tuple[BFM, str]:
    """``(bfm, recorded)``: the BFM for ``model`` and the JSON-safe value to record for it.

    Raises:
        ValueError: An unknown name or path (the message lists the shipped models).
        TypeError: Not a name, path, BFM or family model (an ``nn.Module`` with ``as_bfm()``).
    """
    from bfm_gym.models.protocol import BFM

    if isinstance(model, BFM):
        source = getattr(model, "source", None) or getattr(model, "path", None)
        return model, str(source) if source is not None else UNSAVED_MODEL
    as_bfm = getattr(model, "as_bfm", None)  # a family's bare model (FBModel, HILPModel...)
    if callable(as_bfm):
        return as_bfm(), UNSAVED_MODEL
    if isinstance(model, (str, os.PathLike)):
        from bfm_gym.pretrained import resolve, shipped_models

        if str(model) == UNSAVED_MODEL:
            raise ValueError(
                "This env was built with an in-memory BFM, so its spec cannot rebuild the model. "
                "Save it with bfm.save(path) and pass model=path."
            )
        try:
            path = resolve(model)
        except ValueError as exc:
            names = ", ".join(sorted(shipped_models())) or "none are shipped yet"
            what = f"the {domain} domain" if domain else "this env"
            raise ValueError(
                f"No model {os.fspath(model)!r} for {what}: it is neither a shipped model "
                f"(shipped models: {names}) nor a folder with config.json. Pass model= a shipped name, "
                "a folder written by BFM.save() / bfm-gym pretrain, or a loaded BFM, e.g. "
                f"gym.make(..., model='runs/{domain or 'walker'}/model')."
            ) from exc
        from bfm_gym.models.registry import load_folder

        return load_folder(path, device=device), os.fspath(model)
    raise TypeError(
        f"model must be a shipped model name, a model folder or a BFM; got {type(model).__name__}."
    )


def check_z_hold(z_hold: Any) -> int:
    """The hold as a step count (``"episode"`` -> no limit, as ``-1``)."""
    if z_hold == "episode":
        return -1
    if isinstance(z_hold, (int, np.integer)) and not isinstance(z_hold, bool) and z_hold >= 1:
        return int(z_hold)
    raise ValueError(f"z_hold must be an int >= 1 or 'episode'; got {z_hold!r}.")


def _resolve_reward_fn(reward_fn: Any) -> tuple[RewardFn | None, str | None]:
    if reward_fn is None:
        return None, None
    if isinstance(reward_fn, str):
        if reward_fn == UNIMPORTABLE_REWARD or ":" not in reward_fn:
            raise ValueError(
                f"reward_fn={reward_fn!r}: a string must be 'module:function'; pass the "
                "callable itself for a function that cannot be imported by name."
            )
        return resolve_callable(reward_fn, what="reward_fn"), reward_fn
    if not callable(reward_fn):
        raise TypeError(
            f"reward_fn must be callable(obs, action, next_obs, info) -> float or a "
            f"'module:function' string; got {type(reward_fn).__name__}."
        )
    module, qualname = (
        getattr(reward_fn, "__module__", None),
        getattr(reward_fn, "__qualname__", ""),
    )
    recorded = UNIMPORTABLE_REWARD
    if module and qualname and "<" not in qualname:
        try:
            _resolve_reward_fn(f"{module}:{qualname}")
            recorded = f"{module}:{qualname}"
        except (ImportError, AttributeError, ValueError, TypeError):
            pass
    return reward_fn, recorded


class ActionMap:
    """Validation of latent actions and the action -> z map."""

    def __init__(self, bfm: BFM, action_map: str, *, strict: bool, owner: str) -> None:
        if action_map not in _ALL_ACTIONS:
            raise ValueError(f"action_map must be one of {_ALL_ACTIONS}; got {action_map!r}.")
        self.kind = action_map
        self.d = bfm.z_dim
        self.strict = bool(strict)
        self.owner = owner
        sizes = list(bfm.block_sizes)
        bounds = np.cumsum([0, *sizes]).tolist()
        self.blocks = [slice(a, b) for a, b in itertools.pairwise(bounds)]
        self.radii = [math.sqrt(k) for k in sizes]
        self.bounded = action_map == "sphere"
        lim = 1.0 if self.bounded else np.inf
        self.space = gym.spaces.Box(-lim, lim, (self.d,), np.float32)
        self.shape = (self.d,)
        self.warned = False
        self._abs = np.empty(self.shape, np.float32)  # |a| of single_to_z

    def single_to_z(self, action: Any, out: np.ndarray) -> np.ndarray:
        """The latent of one action, written into ``out`` ``(d,)`` (the per-step fast path)."""
        a = action
        if not (type(a) is np.ndarray and a.dtype == np.float32 and a.shape == self.shape):
            a = _as_rows(a, self)[0]
        # max |a| <= 1 in two ufunc calls (a.min() and a.max() go through numpy's Python-level
        # wrappers: ~2.5 us more per step on the AVX2 VM); NaN propagates and fails the test
        if self.bounded and not _max_reduce(np.abs(a, out=self._abs)) <= 1.0:
            a = self._out_of_box(a[None])[0]
        return self.project_row(a, out)

    def project_row(self, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``proj`` of one row ``(d,)`` into ``out``; every path (single env, vector env) uses
        this, so a latent action gives bitwise the same z wherever it is taken."""
        if len(self.blocks) == 1:
            if self.bounded:  # |a| <= 1: cannot overflow
                n2 = float(np.dot(a, a))
            else:  # huge raw values overflow float32; project() then works in float64
                with np.errstate(over="ignore", invalid="ignore"):
                    n2 = float(np.dot(a, a))
            if _ZERO_NORM**2 < n2 < math.inf:
                np.multiply(a, self.radii[0] / math.sqrt(n2), out=out)
                return out
        _check_finite(a, self)
        self.project(a[None], out[None])
        return out

    def to_z(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(n, d)`` latents for ``(n, d)`` float32 actions from :func:`_as_rows` (row by row,
        as :meth:`single_to_z`)."""
        if self.bounded and not _max_reduce(np.abs(a), axis=None) <= 1.0:
            a = self._out_of_box(a)
        if out is None:
            out = np.empty(a.shape, np.float32)
        if len(self.blocks) == 1 and self.bounded and a.ndim == 2 and _HAS_VECDOT:
            # every row at once, bitwise as project_row: vecdot runs np.dot's kernel per row,
            # the scale is float64 (as math.sqrt) cast to float32 by the multiply (tested)
            n2 = np.vecdot(a, a).astype(np.float64)
            if (n2 > _ZERO_NORM**2).all():
                np.multiply(a, (self.radii[0] / np.sqrt(n2)).astype(np.float32)[:, None], out=out)
                return out
        for row, dst in zip(a, out, strict=True):
            self.project_row(row, dst)
        return out

    def _out_of_box(self, a: np.ndarray) -> np.ndarray:
        """Out-of-box actions: error (NaN/inf, or ``strict``) or clipped with a one-time warning."""
        _check_finite(a, self)
        msg = (
            f"{self.owner}: action outside the action space {self.space} "
            f"(max |a| = {np.abs(a).max():.4g})"
        )
        if self.strict:
            raise ValueError(f"{msg}; expected values in [-1, 1] (strict=True).")
        if not self.warned:
            warnings.warn(
                f"{msg}; clipping to [-1, 1]. Out-of-box actions are clipped (warned once per "
                "env); pass strict=True to reject them.",
                UserWarning,
                stacklevel=4,
            )
            self.warned = True
        return np.clip(a, -1.0, 1.0)

    def project(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``proj`` of every row of finite ``x`` ``(n, d)`` (per block, in float64 so huge raw
        values cannot overflow); a zero row (block) becomes the all-ones latent."""
        if out is None:
            out = np.empty(x.shape, np.float32)
        for block, radius in zip(self.blocks, self.radii, strict=True):
            xb = x[:, block].astype(np.float64)
            norms = np.sqrt(np.einsum("ij,ij->i", xb, xb))
            zero = norms <= _ZERO_NORM
            if zero.any():  # no direction: the all-ones latent of this block
                xb[zero] = 1.0
                norms = np.where(zero, radius, norms)
            out[:, block] = xb * (radius / norms)[:, None]
        return out

    def from_z(self, z: Any) -> np.ndarray:
        """The action selecting ``z``: ``proj(z) / sqrt(d)`` (``"sphere"``, norm 1, inside the
        box) or ``proj(z)`` (``"raw"``); ``(d,)`` float32."""
        rows = _as_rows(z, self, what="z")
        zz = self.project(rows)[0]
        return zz / np.float32(math.sqrt(self.d)) if self.bounded else zz


def _check_finite(a: np.ndarray, amap: ActionMap, what: str = "action") -> None:
    if not np.isfinite(a).all():
        raise ValueError(
            f"{amap.owner}: {what} holds NaN or inf ({np.asarray(a).ravel()[:8].tolist()}...); "
            f"expected finite values (the action space is {amap.space})."
        )


def _as_rows(
    action: Any, amap: ActionMap, *, what: str = "action", batch: int | None = None
) -> np.ndarray:
    """``(n, d)`` finite float32 view/copy of an action, or ``ValueError`` naming what is wrong."""
    d = amap.d
    expected = (d,) if batch is None else (batch, d)
    if type(action) is np.ndarray and action.dtype == np.float32 and action.shape == expected:
        a = action
    else:
        try:
            a = np.asarray(action)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{amap.owner}: {what} of type {type(action).__name__} received; expected a "
                f"float array of shape {expected} (the action space is {amap.space})."
            ) from exc
        if a.dtype.kind not in "fiu":
            raise ValueError(
                f"{amap.owner}: {what} of dtype {a.dtype} received; expected real numbers, "
                f"float32 of shape {expected} (the action space is {amap.space})."
            )
        if a.shape != expected:
            raise ValueError(
                f"{amap.owner}: {what} of shape {a.shape} received; expected shape {expected} "
                f"(z_dim={d}; the action space is {amap.space})."
            )
    _check_finite(a, amap, what)
    if a.dtype != np.float32:
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError(
                f"{amap.owner}: {what} holds values beyond the float32 range; expected finite "
                f"float32 values (the action space is {amap.space})."
            )
    return a.reshape(-1, d)


@dataclasses.dataclass
class InnerEnvSpec:
    """What the wrapper needs to know about the inner env, checked once at construction."""

    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    action_dim: int
    rescale: bool
    low: np.ndarray
    half_range: np.ndarray
    supports_state_reset: bool

    @classmethod
    def check(cls, env: gym.Env, bfm: BFM, *, owner: str) -> InnerEnvSpec:
        """Checks the inner env against the model; ``ValueError`` names both spaces."""
        _check_dm_control_flatten_order(env, owner)
        obs_space, act_space = env.observation_space, env.action_space
        model_obs = gym.spaces.Box(-np.inf, np.inf, (bfm.obs_dim,), np.float32)
        model_act = gym.spaces.Box(-1.0, 1.0, (bfm.action_dim,), np.float32)
        domain = bfm.metadata.domain
        who = f"the model (domain {domain!r})" if domain else "the model"
        if (
            not isinstance(obs_space, gym.spaces.Box)
            or obs_space.shape != (bfm.obs_dim,)
            or obs_space.dtype is None
            or obs_space.dtype.kind != "f"
        ):
            hint = (
                " Flatten dm_control dict observations in native order with "
                "bfm_gym.wrappers.DMCFlattenObservation(env)."
                if isinstance(obs_space, gym.spaces.Dict)
                else ""
            )
            raise ValueError(
                f"{owner}: the env's observation space {obs_space} does not match {who}, which "
                f"expects {model_obs} (obs_dim={bfm.obs_dim}). Wrap an env of the model's domain "
                f"or load a model trained on this env.{hint}"
            )
        if (
            not isinstance(act_space, gym.spaces.Box)
            or act_space.shape != (bfm.action_dim,)
            or not (np.isfinite(act_space.low).all() and np.isfinite(act_space.high).all())
        ):
            raise ValueError(
                f"{owner}: the env's action space {act_space} does not match {who}, which "
                f"acts in {model_act} (action_dim={bfm.action_dim}; other finite bounds are "
                "rescaled). Wrap an env of the model's domain or load a model trained on this env."
            )
        env_domain = getattr(env.unwrapped, "domain", None)
        if isinstance(env_domain, str) and domain and env_domain != domain:
            raise ValueError(
                f"{owner}: the env is a {env_domain!r} env but the model was trained on "
                f"{domain!r}; pass the model of {env_domain!r} (e.g. model={env_domain!r})."
            )
        low = np.asarray(act_space.low, dtype=np.float32)
        high = np.asarray(act_space.high, dtype=np.float32)
        m = bfm.metadata
        if m.action_low is not None and m.action_high is not None:
            if not (np.allclose(m.action_low, low) and np.allclose(m.action_high, high)):
                raise ValueError(
                    f"{owner}: the env's action bounds {act_space} differ from the bounds the "
                    f"model was trained with (low {m.action_low}, high {m.action_high})."
                )
        rescale = not (np.all(low == -1.0) and np.all(high == 1.0))
        return cls(
            obs_shape=tuple(obs_space.shape),
            obs_dtype=np.dtype(obs_space.dtype),
            action_dim=bfm.action_dim,
            rescale=bool(rescale),
            low=low,
            half_range=(high - low) / 2,
            supports_state_reset=bool(getattr(env.unwrapped, "supports_state_reset", False)),
        )

    def to_env_action(self, a: np.ndarray) -> np.ndarray:
        """pi's [-1, 1] action as a fresh float32 array in the env's bounds."""
        if self.rescale:
            return self.low + (a + 1.0) * self.half_range
        return a.copy()


RECORDED_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "next_state")
"""The per-step arrays a transition recorder keeps (``next_state``: None without state capture)."""


def grow_buffers(recorder: Any, axis: int) -> None:
    """Doubles the step ``axis`` of each of ``recorder``'s :data:`RECORDED_FIELDS` arrays in place,
    the recorded entries first (the rest is uninitialised)."""
    for name in RECORDED_FIELDS:
        arr = getattr(recorder, name)
        if arr is not None:
            shape = list(arr.shape)
            shape[axis] *= 2
            grown = np.empty(shape, arr.dtype)
            grown[(slice(None),) * axis + (slice(0, arr.shape[axis]),)] = arr
            setattr(recorder, name, grown)


class _HoldRecorder:
    """Fills the arrays of :class:`HoldTransitions` row by row (grows for ``"episode"``)."""

    __slots__ = (
        "action",
        "n",
        "next_obs",
        "next_state",
        "obs",
        "reward",
        "terminated",
        "truncated",
    )

    def __init__(self, inner: InnerEnvSpec, hold: int, record_state: bool) -> None:
        cap = hold if hold > 0 else 1024
        self.obs = np.empty((cap, *inner.obs_shape), inner.obs_dtype)
        self.action = np.empty((cap, inner.action_dim), np.float32)
        self.reward = np.empty(cap, np.float64)
        self.next_obs = np.empty((cap, *inner.obs_shape), inner.obs_dtype)
        self.terminated = np.empty(cap, bool)
        self.truncated = np.empty(cap, bool)
        self.next_state: np.ndarray | None = None if not record_state else np.empty((cap, 0))
        self.n = 0

    def add(
        self, env: gym.Env, obs: Any, a: np.ndarray, r: Any, next_obs: Any, term: Any, trunc: Any
    ) -> None:
        n = self.n
        if n == self.reward.shape[0]:
            self._grow()
        self.obs[n] = obs
        self.action[n] = a
        self.reward[n] = r
        self.next_obs[n] = next_obs
        self.terminated[n] = term
        self.truncated[n] = trunc
        if self.next_state is not None:
            s = np.asarray(env.unwrapped.get_state(), dtype=np.float64)
            if self.next_state.shape[1] != s.shape[0]:
                self.next_state = np.empty((self.reward.shape[0], s.shape[0]))
            self.next_state[n] = s
        self.n = n + 1

    def _grow(self) -> None:
        grow_buffers(self, axis=0)

    def result(self) -> HoldTransitions:
        n = self.n
        return HoldTransitions(
            self.obs[:n],
            self.action[:n],
            self.reward[:n],
            self.next_obs[:n],
            self.terminated[:n],
            self.truncated[:n],
            None if self.next_state is None else self.next_state[:n],
        )


def _check_dm_control_flatten_order(env: gym.Env, owner: str) -> None:
    """Rejects gymnasium's FlattenObservation over a shimmy dm_control env: it flattens in
    sorted key order, not the native order BFMs are trained on (same size, wrong features)."""
    from bfm_gym.envs.gym_env import native_dm_control_keys

    current: Any = env
    while isinstance(current, gym.Wrapper):
        if isinstance(current, gym.wrappers.FlattenObservation):
            inner_space = current.env.observation_space
            native = native_dm_control_keys(current.env.unwrapped)
            if isinstance(inner_space, gym.spaces.Dict) and native is not None:
                flattened = list(inner_space.spaces)
                if flattened != native:
                    raise ValueError(
                        f"{owner}: gymnasium's FlattenObservation flattens this dm_control env's "
                        f"observations in sorted key order {flattened}, but BFMs are trained on "
                        f"dm_control's native order {native} (the order of task.get_observation, "
                        "as bfm_gym envs and flat_observation=True give). Use "
                        "bfm_gym.wrappers.DMCFlattenObservation(env) instead of FlattenObservation."
                    )
        current = current.env


def _closed_message(owner: str) -> str:
    return f"{owner}: this env has been closed; create a new one (gym.make(...) or wrap(...))."


def _raise_not_running(phase: str, owner: str) -> None:
    if phase == "closed":
        raise RuntimeError(_closed_message(owner))
    if phase == "new":
        raise ResetNeeded(
            f"{owner}.step() was called before reset(); call env.reset(seed=...) first."
        )
    raise ResetNeeded(
        f"{owner}.step() was called after the episode ended (terminated or truncated); "
        "call env.reset() first."
    )


def _no_state_reset_message(env: gym.Env) -> str:
    return (
        f"reset(options={{'state': ...}}) needs an inner env that supports state reset, but "
        f"{type(env.unwrapped).__name__} does not (supports_state_reset is False). bfm_gym envs "
        "support it; check wrapper.supports_state_reset first."
    )
