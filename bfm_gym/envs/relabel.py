"""Offline reward relabelling from stored simulator states.

``reward(s, a, s')`` of a bfm_gym task is a function of the simulator state after
the step (``s'``, which also holds the control ``a``). Relabelling restores each
stored next-state into a scratch physics, runs ``mj_forward`` and calls the task:
the result equals the online reward exactly (tested for every task).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import numpy as np

from bfm_gym.envs import state as _state
from bfm_gym.envs.tasks import RewardFn, Task


class Relabeler:
    """Computes task rewards for batches of stored states of one domain.

    Keeps one scratch physics alive, so repeated calls (e.g. periodic zero-shot
    evaluation during pre-training) do not rebuild the model.

    Args:
        domain: Domain name the states come from.
    """

    def __init__(self, domain: str) -> None:
        from bfm_gym.envs.domains import get_domain

        self.domain = domain
        self._env = get_domain(domain).load(0)
        self._physics = self._env.physics
        self.state_size = _state.state_size(self._physics)

    def rewards(
        self,
        states: np.ndarray,
        task: str | Task | RewardFn,
        *,
        goal: Iterable[float] | None = None,
        dtype: Any = np.float32,
    ) -> np.ndarray:
        """Returns the reward of ``task`` on each state.

        Args:
            states: ``(n, state_size)`` float64 next-states (as stored by collection).
            task: Task name, Task or ``fn(physics) -> float``.
            goal: For goal-reaching domains, an ``(x, y)`` instead of ``task``.
            dtype: ``np.float32`` (what training uses) or ``np.float64``: bit-equal to the
                online rewards (the rewards are computed in float64 and cast last).

        Returns:
            ``(n,)`` rewards of ``dtype``.

        Raises:
            ValueError: States of the wrong size, or a reward that is not a finite scalar.
        """
        return self._rewards(states, task, goal).astype(dtype, copy=False)

    rewards64 = functools.partialmethod(rewards, dtype=np.float64)
    """As :meth:`rewards`, in float64 (bit-equal to the online rewards)."""

    def rewards_many(self, states: np.ndarray, tasks: Iterable[str | Task | RewardFn]) -> dict[str, np.ndarray]:
        """Rewards of several tasks in one pass over the states (each restored once).

        Returns:
            ``{task name: (n,) float64 rewards}``.
        """
        from bfm_gym.envs.tasks import get_task

        resolved = [get_task(self.domain, t) for t in tasks]
        out = self._batch(states, resolved)
        return {task.name: out[:, k] for k, task in enumerate(resolved)}

    def _rewards(self, states: Any, task: Any, goal: Any) -> np.ndarray:
        from bfm_gym.envs.tasks import get_task, goal_task

        resolved = goal_task(self.domain, goal) if goal is not None else get_task(self.domain, task)
        return self._batch(states, [resolved])[:, 0]

    def _batch(self, states: Any, tasks: list[Task]) -> np.ndarray:
        import mujoco

        arr = np.asarray(states)
        if arr.ndim != 2 or arr.shape[1] != self.state_size:
            raise ValueError(
                f"Expected states of shape (n, {self.state_size}) for domain {self.domain!r}; "
                f"got {arr.shape}."
            )
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("States hold NaN or inf values; the dataset is corrupt.")
        out = np.empty((arr.shape[0], len(tasks)), dtype=np.float64)
        physics = self._physics
        model, data = physics.model.ptr, physics.data.ptr
        fns = [task.reward for task in tasks]
        i = k = 0
        try:
            for i in range(arr.shape[0]):
                mujoco.mj_setState(model, data, arr[i], _state.STATE_SPEC)
                mujoco.mj_forward(model, data)
                for k, fn in enumerate(fns):
                    out[i, k] = fn(physics)
        except Exception as exc:  # a user's reward function: name it, the task and the call
            from bfm_gym.errors import reward_error

            raise reward_error(tasks[k], exc, f"fn(physics) on dataset state {i} (relabelling)") from exc
        bad = ~np.isfinite(out)
        if bad.any():
            i, k = np.argwhere(bad)[0]
            raise ValueError(
                f"Task {tasks[k].name!r} returned {out[i, k]!r} for state {i}; a reward "
                "function must return one finite float."
            )
        return out


def relabel(domain: str, states: np.ndarray, task: str | Task | RewardFn, **kwargs: Any) -> np.ndarray:
    """One-shot form of :meth:`Relabeler.rewards`."""
    return Relabeler(domain).rewards(states, task, **kwargs)
