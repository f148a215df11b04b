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

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from bfm_gym.envs.domains import is_gym_domain
from bfm_gym.envs.gym_spec import (
    SUPPORTED_SPACES,
    EnvInfo,
    check_spaces,
    flatten_order,
    make_raw_env,
    native_dm_control_keys,
)
from bfm_gym.envs.state import get_mj_state, has_sim_state, set_mj_state
from bfm_gym.envs.tasks import finite_scalar

__all__ = [  # the names moved to gym_spec, state, tasks and domains stay importable from here
    "SUPPORTED_SPACES",
    "EnvInfo",
    "GymEnv",
    "MujocoGymEnv",
    "adopt_env",
    "check_spaces",
    "env_info_of",
    "finite_scalar",
    "flatten_order",
    "get_mj_state",
    "has_sim_state",
    "is_gym_domain",
    "make_gym_env",
    "make_raw_env",
    "make_task_env",
    "native_dm_control_keys",
    "set_mj_state",
]

# -- the env --------------------------------------------------------------------------------


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
        env = make_raw_env(env_id, env_kwargs or {}, max_episode_steps, render_mode)
    cls = MujocoGymEnv if has_sim_state(env.unwrapped) else GymEnv
    try:
        return cls(env, task, obs_keys=obs_keys, env_kwargs=env_kwargs)
    except Exception:
        env.close()
        raise


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
