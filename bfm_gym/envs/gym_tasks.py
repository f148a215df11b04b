"""Tasks of Gymnasium envs: the env's own reward, transition rewards, simulator rewards.

A task of a Gymnasium id (registered with ``register_task(ID, name, fn)`` or the
``register_tasks`` plugin hook) is one of:

* ``fn(obs, action, next_obs) -> float``: a function of the transition. ``obs`` and
  ``next_obs`` are the flat float32 observations a BFM sees, ``action`` the action sent to
  the env (in the env's bounds). Works for every env, and relabels any dataset that holds
  observations and actions.
* ``fn(env) -> float``: a function of the simulator after the step, for MuJoCo envs. ``env``
  is the unwrapped ``MujocoEnv`` with the next state restored and ``mj_forward`` run, so
  ``env.data.qpos``, ``env.data.qvel``, ``env.get_body_com("torso")``... are those of the
  next state. Offline it relabels datasets that recorded simulator states (``bfm-gym
  collect`` does for MuJoCo envs); online the same code runs on a copy of the state, so
  the two agree exactly.
* ``native``: the env's own reward, always available. It is stored at collection time
  (Minari ``rewards``), so it labels datasets but cannot be recomputed from them (Gymnasium
  MuJoCo rewards use the state before the step, e.g. a velocity from two positions).

The number of required positional parameters tells the first two apart (three: transition,
one: simulator). Every value must be one finite float; anything else raises ``ValueError``
naming the task.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from bfm_gym.envs.gym_spec import EnvInfo, make_raw_env
from bfm_gym.envs.state import has_sim_state, set_mj_state
from bfm_gym.envs.tasks import NATIVE, TaskInputs, finite_scalar, get_task, native_reward, task_inputs

__all__ = ["NATIVE", "GymTaskReward", "StateLabeler", "TaskInputs", "label_rewards", "native_reward", "task_inputs"]

class StateLabeler:
    """Evaluates simulator tasks on stored MuJoCo states with one scratch env.

    Args:
        make: Builds the env (``gym.make(...)``) whose unwrapped ``MujocoEnv`` is the scratch.
        what: Names the env in messages.
    """

    def __init__(self, make: Any, what: str) -> None:
        self._env = make()
        self.env = self._env.unwrapped
        self.what = what
        if not has_sim_state(self.env):
            self._env.close()
            raise ValueError(
                f"Tasks of the form fn(env) read the MuJoCo simulator, but {what} is not a "
                "MuJoCo env; write the task as fn(obs, action, next_obs) instead."
            )

    def rewards(self, fns: list[tuple[str, Any]], states: np.ndarray) -> np.ndarray:
        """``(n, len(fns))`` float64 rewards of named ``fn(env)`` on ``(n, state_size)`` states."""
        env = self.env
        model, data = env.model, env.data
        out = np.empty((len(states), len(fns)), dtype=np.float64)
        for i, state in enumerate(states):
            set_mj_state(model, data, state, what=self.what)
            for k, (name, fn) in enumerate(fns):
                out[i, k] = finite_scalar(fn(env), name, f"on stored state {i}")
        return out

    def close(self) -> None:
        self._env.close()


class GymTaskReward:
    """The online reward of a :class:`~bfm_gym.envs.gym_env.GymEnv`'s task."""

    def __init__(self, env: Any, task: Any) -> None:
        self.env = env
        self.task = get_task(env.domain, NATIVE if task is None else task)
        self.kind = self.task.inputs
        self._labeler: StateLabeler | None = None
        if self.kind == "simulator":
            if not env.supports_state_reset:
                raise ValueError(
                    f"Task {self.task.name!r} is a function of the simulator (fn(env)), but "
                    f"{env.domain} is not a MuJoCo env bfm_gym can read; write it as "
                    "fn(obs, action, next_obs)."
                )
            spec = env.env.spec
            if spec is None:
                raise ValueError(f"{env.domain} has no spec to build a scratch copy for fn(env) tasks.")
            import gymnasium as gym

            self._labeler = StateLabeler(lambda: gym.make(spec), env.domain)

    def __call__(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, native: float,
                 step: int) -> float:
        name, where = self.task.name, f"at step {step} of {self.env.domain}"
        if self.kind == "native":
            return native
        if self.kind == "transition":
            return finite_scalar(self.task.reward(obs, np.asarray(action, np.float64), next_obs), name, where)
        assert self._labeler is not None
        return float(self._labeler.rewards([(name, self.task.reward)], self.env.get_state()[None])[0, 0])

    def close(self) -> None:
        if self._labeler is not None:
            self._labeler.close()
            self._labeler = None


def label_rewards(domain: str, tasks: Iterable[Any], data: Any, env_info: Any = None) -> dict[str, np.ndarray]:
    """Rewards of several tasks on the transitions of a dataset (or inference samples).

    Args:
        domain: The Gymnasium id (``Transitions.domain``).
        tasks: Task names, Tasks or functions of that id.
        data: An object with ``obs``, ``action``, ``next_obs`` (transition tasks),
            ``next_state`` (simulator tasks) and ``reward`` (``native``), each ``(n, ...)``
            or None when not recorded. Actions are in ``[-1, 1]`` as datasets store them.
        env_info: The :class:`~bfm_gym.envs.gym_env.EnvInfo` (action bounds for transition
            tasks, kwargs for the scratch env of simulator tasks).

    Returns:
        ``{task name: (n,) float64}``.

    Raises:
        ValueError: What a task needs is not in the data (e.g. simulator states of a dataset
            made by someone else), or a task returned a non-finite or non-scalar value.
    """
    info = EnvInfo.from_dict(env_info) if isinstance(env_info, dict) else (env_info or EnvInfo(id=domain))
    resolved = [get_task(domain, NATIVE if t is None else t) for t in tasks]
    out: dict[str, np.ndarray] = {}
    state_tasks: list[tuple[str, Any]] = []
    for task in resolved:
        if task.inputs == "native":
            reward = getattr(data, "reward", None)
            if reward is None:
                raise ValueError(
                    f"The data of {domain} holds no recorded rewards, so task 'native' cannot "
                    "label it; collect it with `bfm-gym collect --env` or use a Minari dataset "
                    "with rewards."
                )
            out[task.name] = np.asarray(reward, dtype=np.float64).reshape(-1)
        elif task.inputs == "transition":
            obs, action, nxt = (getattr(data, k, None) for k in ("obs", "action", "next_obs"))
            if obs is None or action is None:
                raise ValueError(
                    f"Task {task.name!r} is fn(obs, action, next_obs), but these samples hold "
                    "only next observations (a model folder from an older bfm_gym); re-export "
                    "the model or pass the dataset."
                )
            a_env = info.rescale_actions(action)
            fn = task.reward
            out[task.name] = np.array(
                [finite_scalar(fn(obs[i], a_env[i], nxt[i]), task.name, f"on transition {i}")
                 for i in range(len(nxt))], dtype=np.float64)
        else:
            state_tasks.append((task.name, task.reward))
    if state_tasks:
        states = getattr(data, "next_state", None)
        if states is None or np.asarray(states).ndim != 2 or np.asarray(states).shape[1] == 0:
            names = ", ".join(repr(n) for n, _ in state_tasks)
            raise ValueError(
                f"Task(s) {names} of {domain} are functions of the simulator state (fn(env)), but "
                "this data holds no simulator states (a dataset not collected by `bfm-gym "
                "collect`, or a non-MuJoCo env). Write them as fn(obs, action, next_obs), or "
                f"collect data with `bfm-gym collect --env {domain}`."
            )
        labeler = StateLabeler(lambda: make_raw_env(info.id, info.kwargs, None), domain)
        try:
            values = labeler.rewards(state_tasks, np.asarray(states, dtype=np.float64))
        finally:
            labeler.close()
        for k, (name, _) in enumerate(state_tasks):
            out[name] = values[:, k]
    return {t.name: out[t.name] for t in resolved}
