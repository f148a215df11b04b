"""Any continuous-control Gymnasium env as a bfm_gym env ("Gymnasium domains").

bfm_gym's own domains are dm_control simulators (:mod:`bfm_gym.envs.dmc_env`). Any other
registered Gymnasium id works too, as long as its spaces fit a BFM:

* the **action space** is a ``Box`` with finite bounds (the BFM acts in ``[-1, 1]``; actions
  are rescaled to the env's bounds);
* the **observation space** is a flat ``Box`` (one vector), or a ``Dict`` of flat ``Box``
  entries, which is flattened into one float32 vector in a recorded key order: the
  native order of a Shimmy dm_control env (that of ``task.get_observation``), else the
  order of the ``Dict`` space's keys (Gymnasium sorts them). The order is part of
  :class:`EnvInfo`, recorded in datasets and models, and reused when the env is rebuilt.

Discrete, MultiDiscrete, MultiBinary or Dict actions and image observations are refused
with a message naming what is supported.

:func:`make_gym_env` builds a :class:`GymEnv`: the env's observations flattened to float32,
its reward replaced by a task's (:mod:`bfm_gym.envs.gym_tasks`; by default the env's own
reward, the task ``native``). For MuJoCo-based envs (Gymnasium's ``MujocoEnv``: ``model``,
``data``, ``_get_obs``) it builds a :class:`MujocoGymEnv`, which also offers the simulator
state as DMCEnv does: ``get_state()`` / ``set_state()`` and ``reset(options={"state": s})``.
A state is MuJoCo's full physics state (time, qpos, qvel, actuator activations, the
solver's warm start and the last control; :mod:`bfm_gym.envs.state`), so a trajectory
continues bit for bit from a restored state. The observation returned by a state reset is
computed from the state (``_get_obs()`` after ``mj_forward``); for envs whose observation
reads body positions (Reacher's fingertip), MuJoCo's step leaves those one physics
sub-step behind the state, so that first observation can differ slightly from the one seen
after the original step; everything after it is identical.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

__all__ = [
    "EnvInfo",
    "GymEnv",
    "MujocoGymEnv",
    "adopt_env",
    "check_spaces",
    "env_info_of",
    "has_sim_state",
    "is_gym_domain",
    "make_gym_env",
    "make_task_env",
]

SUPPORTED_SPACES = (
    "bfm_gym supports a Box action space with finite bounds and a flat Box observation "
    "(or a Dict of flat Box observations, flattened in a recorded order)"
)


def is_gym_domain(domain: str) -> bool:
    """Whether ``domain`` names a Gymnasium id rather than a built-in dm_control domain."""
    from bfm_gym.envs.domains import DOMAINS

    return domain not in DOMAINS


# -- spaces -------------------------------------------------------------------------------


def check_spaces(observation_space: gym.Space, action_space: gym.Space, *, what: str) -> None:
    """Raises ``ValueError`` unless the spaces fit a BFM (see the module docstring).

    Args:
        observation_space: The env's (or dataset's) observation space.
        action_space: The env's (or dataset's) action space.
        what: Names the env or dataset in the message (``"env 'CartPole-v1'"``).
    """
    if not isinstance(action_space, gym.spaces.Box):
        kind = type(action_space).__name__
        raise ValueError(
            f"{what} has a {kind} action space ({action_space}); {SUPPORTED_SPACES}. BFM "
            "policies output continuous actions: use a continuous-control env (e.g. "
            "Pendulum-v1, the MuJoCo envs such as Hopper-v5), or a continuous variant of it "
            "(e.g. LunarLander-v3 with continuous=True)."
        )
    if action_space.shape is None or len(action_space.shape) != 1:
        raise ValueError(
            f"{what} has an action space of shape {action_space.shape}; {SUPPORTED_SPACES} "
            "(a 1-D action vector). Flatten the actions with a wrapper first."
        )
    if not (np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
        raise ValueError(
            f"{what} has unbounded actions ({action_space}); {SUPPORTED_SPACES}. Give the "
            "env finite bounds (gymnasium.wrappers.ClipAction / RescaleAction)."
        )
    spaces = (
        dict(observation_space.spaces) if isinstance(observation_space, gym.spaces.Dict)
        else {"": observation_space}
    )
    for key, space in spaces.items():
        where = f"observation {key!r}" if key else "observation"
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(
                f"{what} has a {type(space).__name__} {where} space ({space}); "
                f"{SUPPORTED_SPACES}. Map it to a Box with an observation wrapper first."
            )
        shape = tuple(space.shape or ())
        if len(shape) >= 2 and (len(shape) == 3 or space.dtype == np.uint8):
            raise ValueError(
                f"{what} has image observations ({where} of shape {shape}, {space.dtype}); "
                f"{SUPPORTED_SPACES}. BFMs here learn from state vectors: use the env's state "
                "observations (MuJoCo envs give them by default; dm_control without pixels), "
                "or an observation wrapper that turns images into a flat feature vector."
            )
        if len(shape) > 1:
            raise ValueError(
                f"{what} has a {where} of shape {shape}; {SUPPORTED_SPACES}. Flatten it with "
                "gymnasium.wrappers.FlattenObservation first."
            )


def native_dm_control_keys(unwrapped: Any) -> list[str] | None:
    """dm_control's own observation key order for a Shimmy dm_control env (the order of
    ``task.get_observation``), or None for any other env."""
    dm_env = getattr(unwrapped, "_env", None)
    spec_fn = getattr(dm_env, "observation_spec", None)
    if type(unwrapped).__name__ != "DmControlCompatibilityV0" or not callable(spec_fn):
        return None
    spec = spec_fn()
    return list(spec) if isinstance(spec, dict) else None


def flatten_order(env: gym.Env, obs_keys: Sequence[str] | None = None) -> list[str] | None:
    """The key order that flattens ``env``'s Dict observations (None for a Box).

    ``obs_keys`` (e.g. recorded in a model) wins; else a Shimmy dm_control env's native
    order; else the order of the Dict space.

    Raises:
        ValueError: ``obs_keys`` do not match the space's keys.
    """
    space = env.observation_space
    if not isinstance(space, gym.spaces.Dict):
        if obs_keys:
            raise ValueError(
                f"Observation keys {list(obs_keys)} were recorded but the env's observation "
                f"space is {space}, not a Dict: this is not the env the keys were recorded on."
            )
        return None
    keys = list(space.spaces)
    if obs_keys is not None:
        if sorted(obs_keys) != sorted(keys):
            raise ValueError(
                f"Recorded observation keys {list(obs_keys)} do not match the env's keys {keys}."
            )
        return list(obs_keys)
    return native_dm_control_keys(env.unwrapped) or keys


# -- what a dataset or model records about its env ------------------------------------------


@dataclasses.dataclass(frozen=True)
class EnvInfo:
    """The Gymnasium env a dataset was collected on / a model was trained on.

    Attributes:
        id: Gymnasium id (``"Hopper-v5"``).
        kwargs: Keyword arguments of ``gym.make`` (JSON-safe).
        obs_keys: Flattening order of a Dict observation (None for a Box).
        observation_space: The env's own observation space, as text (for messages).
        action_space: The env's action space, as text.
        action_low: Action lower bounds (the BFM's ``[-1, 1]`` is rescaled to them).
        action_high: Action upper bounds.
        max_episode_steps: Episode cap the data was collected with (None: the env's own).
        has_state: Whether simulator states were recorded (MuJoCo envs).
    """

    id: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    obs_keys: list[str] | None = None
    observation_space: str = ""
    action_space: str = ""
    action_low: list[float] | None = None
    action_high: list[float] | None = None
    max_episode_steps: int | None = None
    has_state: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``from_dict`` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvInfo:
        """Reads :meth:`to_dict`'s output (unknown keys are ignored: newer writers)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def make(self, task: Any = None, **kwargs: Any) -> GymEnv:
        """Rebuilds the env (``make_gym_env`` with the recorded id, kwargs and key order)."""
        return make_gym_env(self.id, task, env_kwargs=self.kwargs, obs_keys=self.obs_keys,
                            max_episode_steps=self.max_episode_steps, **kwargs)

    def rescale_actions(self, action: np.ndarray) -> np.ndarray:
        """``[-1, 1]`` actions (as datasets store them) in the env's bounds, float64."""
        a = np.asarray(action, dtype=np.float64)
        if self.action_low is None or self.action_high is None:
            return a
        low, high = np.asarray(self.action_low), np.asarray(self.action_high)
        return low + (a + 1.0) * (high - low) / 2.0


# -- the env --------------------------------------------------------------------------------


def has_sim_state(unwrapped: Any) -> bool:
    """Whether ``unwrapped`` is a MuJoCo env whose state bfm_gym can capture and restore."""
    import mujoco

    return (isinstance(getattr(unwrapped, "model", None), mujoco.MjModel)
            and isinstance(getattr(unwrapped, "data", None), mujoco.MjData)
            and callable(getattr(unwrapped, "_get_obs", None)))


class GymEnv(gym.Env[np.ndarray, np.ndarray]):
    """A Gymnasium env with flat float32 observations and a bfm_gym task's reward.

    Build it with :func:`make_gym_env` (which picks :class:`MujocoGymEnv` for MuJoCo envs).

    Args:
        env: The env to adapt (e.g. ``gym.make("Hopper-v5")``); this object owns it.
        task: A task of the env's id (name, :class:`~bfm_gym.envs.tasks.Task` or function),
            or None for the env's own reward (task ``native``).
        obs_keys: Flattening order of Dict observations (see :func:`flatten_order`).
        env_kwargs: The ``gym.make`` kwargs ``env`` was built with (recorded in :attr:`info`).

    Raises:
        ValueError: Spaces that do not fit a BFM (the message says what is supported).
    """

    supports_state_reset: ClassVar[bool] = False

    def __init__(self, env: gym.Env, task: Any = None, *, obs_keys: Sequence[str] | None = None,
                 env_kwargs: dict[str, Any] | None = None) -> None:
        from bfm_gym.envs.gym_tasks import GymTaskReward

        env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        check_spaces(env.observation_space, env.action_space, what=f"env {env_id!r}")
        self.env = env
        self.domain = env_id
        self.metadata = dict(env.metadata)
        self.render_mode = env.render_mode
        self._keys = flatten_order(env, obs_keys)
        space = env.observation_space
        if self._keys is None:
            self.observation_space = gym.spaces.Box(
                np.asarray(space.low, np.float32).reshape(-1),
                np.asarray(space.high, np.float32).reshape(-1), dtype=np.float32)
        else:
            parts = [space.spaces[k] for k in self._keys]
            self.observation_space = gym.spaces.Box(
                np.concatenate([np.asarray(p.low, np.float32).reshape(-1) for p in parts]),
                np.concatenate([np.asarray(p.high, np.float32).reshape(-1) for p in parts]),
                dtype=np.float32)
        act = env.action_space
        self.action_space = gym.spaces.Box(np.asarray(act.low, np.float32),
                                           np.asarray(act.high, np.float32), dtype=np.float32)
        max_steps = env.spec.max_episode_steps if env.spec is not None else None
        self.info = EnvInfo(
            id=env_id, kwargs=json.loads(json.dumps(env_kwargs or {})), obs_keys=self._keys,
            observation_space=str(space), action_space=str(act),
            action_low=self.action_space.low.tolist(), action_high=self.action_space.high.tolist(),
            max_episode_steps=max_steps, has_state=self.supports_state_reset,
        )
        self._reward = GymTaskReward(self, task)
        self.task = self._reward.task
        if self.task.inputs == "native":  # gym.make(spec) rebuilds the inner env (then re-adapted)
            self.spec = env.spec
        self._obs: np.ndarray | None = None
        self._steps = 0

    def flatten(self, obs: Any) -> np.ndarray:
        """The flat float32 observation of one raw observation of the inner env."""
        if self._keys is None:
            return np.asarray(obs, dtype=np.float32).reshape(-1)
        return np.concatenate([np.asarray(obs[k], dtype=np.float32).reshape(-1) for k in self._keys])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets the inner env (``options`` pass through; ``"state"`` needs MujocoGymEnv)."""
        if options and "state" in options:
            raise ValueError(
                f"reset(options={{'state': ...}}) needs simulator state access; {self.domain} "
                "is not a MuJoCo env (bfm_gym reads and restores the state of Gymnasium's "
                "MujocoEnv only). Everything else (collection, pre-training, zero-shot, the "
                "adapters without state resets) works without it."
            )
        super().reset(seed=seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = self.flatten(obs)
        self._steps = 0
        return self._obs.copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One step of the inner env; the reward is the task's (``info["native_reward"]``
        holds the env's own)."""
        if self._obs is None:
            from gymnasium.error import ResetNeeded

            raise ResetNeeded(f"{self.domain}: step() called before reset(); call reset() first.")
        a = np.asarray(action, dtype=np.float32)
        obs, native, terminated, truncated, info = self.env.step(a)
        next_obs = self.flatten(obs)
        reward = self._reward(self._obs, a, next_obs, float(native), self._steps)
        self._obs = next_obs
        self._steps += 1
        return next_obs.copy(), reward, bool(terminated), bool(truncated), {**info, "native_reward": float(native)}

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self._reward.close()
        self.env.close()


class MujocoGymEnv(GymEnv):
    """A :class:`GymEnv` over a MuJoCo env, with simulator state capture and restore."""

    supports_state_reset: ClassVar[bool] = True

    def __init__(self, env: gym.Env, task: Any = None, **kwargs: Any) -> None:
        if not has_sim_state(env.unwrapped):
            raise ValueError(f"{type(env.unwrapped).__name__} is not a MuJoCo env (no model/data).")
        self._mj = (env.unwrapped.model, env.unwrapped.data)
        super().__init__(env, task, **kwargs)

    @property
    def state_size(self) -> int:
        """Length of a state vector of this env."""
        import mujoco

        from bfm_gym.envs.state import STATE_SPEC

        return int(mujoco.mj_stateSize(self._mj[0], STATE_SPEC))

    def get_state(self) -> np.ndarray:
        """The simulator state after the last step or reset, ``(state_size,)`` float64."""
        return get_mj_state(*self._mj)

    def set_state(self, state: Any) -> None:
        """Restores a state captured by :meth:`get_state` (same env) and runs ``mj_forward``.

        Raises:
            ValueError: The state does not fit this env's model.
        """
        set_mj_state(*self._mj, state, what=self.domain)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets; ``options={"state": s}`` then restores ``s`` (the rest of ``options`` goes
        to the inner env). The episode's step count restarts at 0 (the inner ``TimeLimit``)."""
        options = dict(options or {})
        state = options.pop("state", None)
        obs, info = super().reset(seed=seed, options=options or None)
        if state is not None:
            self.set_state(state)
            self._obs = self.flatten(self.env.unwrapped._get_obs())
            obs = self._obs.copy()
        return obs, info


def get_mj_state(model: Any, data: Any) -> np.ndarray:
    """Full MuJoCo state of ``data`` (spec :data:`bfm_gym.envs.state.STATE_SPEC`), float64."""
    import mujoco

    from bfm_gym.envs.state import STATE_SPEC

    out = np.empty(mujoco.mj_stateSize(model, STATE_SPEC), dtype=np.float64)
    mujoco.mj_getState(model, data, out, STATE_SPEC)
    return out


def set_mj_state(model: Any, data: Any, state: Any, *, what: str = "this env") -> None:
    """Restores a :func:`get_mj_state` vector and runs ``mj_forward``.

    Raises:
        ValueError: Wrong size (a state of another env), non-float or non-finite values.
    """
    import mujoco

    from bfm_gym.envs.state import STATE_SPEC

    arr = np.asarray(state)
    expected = int(mujoco.mj_stateSize(model, STATE_SPEC))
    if arr.ndim != 1 or arr.shape[0] != expected or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"A {what} state is a 1-D float vector of {expected} values; got shape {arr.shape} "
            f"({arr.dtype}). Was it captured on another env? Capture states with get_state() "
            "on the same env."
        )
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("The state holds NaN or inf values; it cannot be restored.")
    mujoco.mj_setState(model, data, arr, STATE_SPEC)
    mujoco.mj_forward(model, data)


def make_gym_env(
    env_id: str | None = None,
    task: Any = None,
    *,
    env: gym.Env | None = None,
    env_kwargs: dict[str, Any] | None = None,
    obs_keys: Sequence[str] | None = None,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
) -> GymEnv:
    """Builds a :class:`GymEnv` (a :class:`MujocoGymEnv` for MuJoCo envs).

    Args:
        env_id: A registered Gymnasium id; or give ``env``.
        task: Task of that id (see :class:`GymEnv`); None: the env's own reward.
        env: An env already made (``gym.make(...)``) to adapt instead of ``env_id``.
        env_kwargs: Keyword arguments of ``gym.make``.
        obs_keys: Flattening order of Dict observations.
        max_episode_steps: Episode cap (``gym.make``'s; default: the id's own).
        render_mode: ``gym.make``'s render mode.

    Raises:
        ValueError: An unknown id (with the closest registered ids), bad kwargs, or spaces that
            do not fit a BFM.
    """
    if env is None:
        if not env_id:
            raise ValueError("Give a Gymnasium id (env_id=...) or an env (env=...).")
        env = _make(env_id, env_kwargs or {}, max_episode_steps, render_mode)
    cls = MujocoGymEnv if has_sim_state(env.unwrapped) else GymEnv
    try:
        return cls(env, task, obs_keys=obs_keys, env_kwargs=env_kwargs)
    except Exception:
        env.close()
        raise


def _make(env_id: str, kwargs: dict[str, Any], max_episode_steps: int | None,
          render_mode: str | None) -> gym.Env:
    import difflib

    if env_id.startswith("dm_control/"):
        import shimmy  # noqa: F401 - registers the dm_control/* ids
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"{env_id!r} is not a registered Gymnasium id.{hint} Import the package that "
            "registers it first (or pass a built env), and check `gymnasium.pprint_registry()`."
        )
    extra: dict[str, Any] = dict(kwargs)
    if max_episode_steps is not None:
        extra["max_episode_steps"] = int(max_episode_steps)
    if render_mode is not None:
        extra["render_mode"] = render_mode
    try:
        return gym.make(env_id, **extra)
    except TypeError as exc:
        raise ValueError(f"gym.make({env_id!r}, **{kwargs}) failed: {exc}. Check --env-kwargs.") from exc


def make_task_env(domain: str, task: Any = None, *, goal: Any = None,
                  env_info: EnvInfo | dict[str, Any] | None = None,
                  max_episode_steps: int | None = None, render_mode: str | None = None) -> gym.Env:
    """The env of ``task`` in ``domain``: a ``DMCEnv`` for dm_control domains, else a GymEnv.

    Args:
        domain: A bfm_gym domain (``"walker"``) or a Gymnasium id (``"Hopper-v5"``).
        task: Task name, Task or function (None: reward-free DMCEnv / the env's own reward).
        goal: A goal position (point_mass_maze only).
        env_info: What the model or dataset recorded about a Gymnasium env (kwargs, key
            order); None builds ``gym.make(domain)``.
        max_episode_steps: Cap for Gymnasium envs (DMCEnv episodes are 1000 steps).
        render_mode: Render mode.
    """
    if not is_gym_domain(domain):
        from bfm_gym.envs.dmc_env import DMCEnv

        return DMCEnv(domain, task, goal=goal, render_mode=render_mode)
    if goal is not None:
        raise ValueError(f"{domain} has no goal tasks; goals (x, y) exist for point_mass_maze.")
    info = EnvInfo.from_dict(env_info) if isinstance(env_info, dict) else env_info
    if info is None:
        info = EnvInfo(id=domain)
    return make_gym_env(info.id, task, env_kwargs=info.kwargs, obs_keys=info.obs_keys,
                        max_episode_steps=max_episode_steps or info.max_episode_steps,
                        render_mode=render_mode)


def env_info_of(bfm_or_metadata: Any) -> EnvInfo | None:
    """The :class:`EnvInfo` a model (or its metadata) records, or None (dm_control domains)."""
    meta = getattr(bfm_or_metadata, "metadata", bfm_or_metadata)
    extra = getattr(meta, "extra", None) or {}
    raw = extra.get("env")
    return EnvInfo.from_dict(raw) if isinstance(raw, dict) else None


def finite_scalar(value: Any, task: str, where: str) -> float:
    """``float(value)`` when it is one finite number; ``ValueError`` naming the task otherwise."""
    if np.ndim(value) != 0:
        raise ValueError(
            f"Task {task!r} returned a value of shape {np.shape(value)} {where}; a task must "
            "return one float (sum or select the entries you mean)."
        )
    try:
        r = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Task {task!r} returned {value!r} {where}; a task must return one float.") from exc
    if not math.isfinite(r):
        raise ValueError(
            f"Task {task!r} returned {r} {where}; a task must return a finite float (guard "
            "divisions and logarithms)."
        )
    return r


def adopt_env(env: gym.Env, bfm: Any) -> gym.Env:
    """``env`` as a :class:`GymEnv` when the model was trained on a Gymnasium env and the
    adapter adds something: simulator state access of a MuJoCo env (``reset(options={"state":
    s})``, ``get_state()``) or flattening of Dict observations in the recorded order. Otherwise
    (dm_control models, envs already adapted, envs that do not fit) ``env`` unchanged, so the
    latent wrapper's own space check reports any mismatch with both spaces.
    """
    info = env_info_of(bfm)
    unwrapped = env.unwrapped
    if info is None or isinstance(unwrapped, GymEnv) or callable(getattr(unwrapped, "get_state", None)):
        return env
    if not (has_sim_state(unwrapped) or isinstance(env.observation_space, gym.spaces.Dict)):
        return env
    try:
        cls = MujocoGymEnv if has_sim_state(unwrapped) else GymEnv
        return cls(env, None, obs_keys=info.obs_keys, env_kwargs=info.kwargs)
    except ValueError:
        return env
