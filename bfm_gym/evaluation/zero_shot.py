"""Zero-shot evaluation of a BFM: infer z for a task, then run ``pi(s, z)``.

Reward inference labels ``n`` dataset transitions with the task reward computed on the
*next* state and hands them to the model family's estimator (FB: ``z_r = proj(mean_i
r(s'_i) B(s'_i))``; HILP: least squares of r on phi); see :mod:`bfm_gym.models.inference`,
which also holds :class:`InferenceSet` (re-exported here).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bfm_gym.envs.tasks import RewardFn, Task
from bfm_gym.evaluation.rollout import EvalResult, rollout_returns, summarize
from bfm_gym.models.inference import INFERENCE_FILE, InferenceSet, reward_z

__all__ = ["INFERENCE_FILE", "InferenceSet", "evaluate_zero_shot", "task_z"]


def task_z(bfm: Any, samples: InferenceSet, task: str | Task | RewardFn | None = None,
           *, goal: Any = None) -> np.ndarray:
    """Infers the task latent for ``task`` (or reward inference for a ``goal`` position).

    For a goal, the reach reward of the goal is relabelled like any task (robust to
    the velocity part of the observation); ``BFM.goal_z`` gives the family's goal latent
    instead. The estimator is the model family's (:func:`bfm_gym.models.inference.reward_z`).
    """
    return reward_z(bfm, samples, task, goal=goal, owner="zero-shot inference")


def evaluate_zero_shot(
    bfm: Any,
    domain: str,
    tasks: list[str | Task],
    samples: InferenceSet,
    *,
    episodes: int = 10,
    seed: int = 0,
    goals: list[tuple[float, float]] | None = None,
    progress: bool = False,
) -> dict[str, EvalResult]:
    """Zero-shot returns of ``bfm`` on each task (and goal), ``episodes`` each.

    Returns:
        ``{task label: EvalResult}``; the z used is in ``result.extra["z"]``.
    """
    from bfm_gym.envs.gym_env import env_info_of, make_task_env

    results: dict[str, EvalResult] = {}
    jobs: list[tuple[str, dict[str, Any]]] = [
        (t.name if isinstance(t, Task) else str(t), {"task": t}) for t in tasks
    ]
    jobs += [(f"reach@{g[0]:g},{g[1]:g}", {"goal": tuple(g)}) for g in goals or []]
    for label, spec in jobs:
        z = task_z(bfm, samples, spec.get("task"), goal=spec.get("goal"))

        def policy(obs: np.ndarray, z: np.ndarray = z) -> np.ndarray:
            return bfm.act(obs, z)

        returns = rollout_returns(lambda spec=spec: make_task_env(
            domain, spec.get("task"), goal=spec.get("goal"), env_info=env_info_of(bfm)),
            policy, episodes, seed, progress=progress)
        results[label] = summarize(label, returns, seed, z=[round(float(v), 5) for v in z])
    return results
