"""Zero-shot evaluation of a BFM: infer z for a task, then run ``pi(s, z)``.

Reward inference follows the FB papers (REFERENCE §1.5): label ``n`` dataset
transitions with the task reward computed on the *next* state, and set
``z_r = proj(mean_i r(s'_i) B(s'_i))``. Goal inference sets ``z = proj(B(g))``.
An :class:`InferenceSet` holds those next states (observations and simulator
states), so a model can infer ``z`` for any reward function without its dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bfm_gym.envs.tasks import RewardFn, Task
from bfm_gym.evaluation.rollout import EvalResult, rollout_returns, summarize

INFERENCE_FILE = "inference_samples.safetensors"


@dataclass
class InferenceSet:
    """Dataset next-states used to infer ``z`` from a reward.

    Attributes:
        domain: Domain the states belong to.
        next_obs: ``(n, obs_dim)`` float32.
        next_state: ``(n, state_size)`` float64 simulator states (for relabelling).
    """

    domain: str
    next_obs: np.ndarray
    next_state: np.ndarray

    @classmethod
    def from_transitions(cls, transitions: Any, n: int = 50_000, seed: int = 0) -> InferenceSet:
        """Samples ``n`` transitions (without replacement) of a dataset."""
        total = len(transitions)
        idx = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
        return cls(transitions.domain, transitions.next_obs[idx], transitions.next_state[idx])

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Writes ``inference_samples.safetensors`` into ``folder`` (atomically)."""
        from safetensors.numpy import save_file

        from bfm_gym.utils.io import atomic_path

        path = Path(folder) / INFERENCE_FILE
        with atomic_path(path) as tmp:
            save_file({"next_obs": np.ascontiguousarray(self.next_obs),
                       "next_state": np.ascontiguousarray(self.next_state)}, str(tmp),
                      metadata={"domain": self.domain})
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> InferenceSet:
        """Reads the samples shipped in a model folder.

        Raises:
            FileNotFoundError: The folder has no inference samples.
            ValueError: The file is corrupt.
        """
        from safetensors import SafetensorError, safe_open

        path = Path(folder) / INFERENCE_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: this model ships no inference samples. Pass a dataset "
                "(--dataset DIR) to infer z from rewards."
            )
        try:
            with safe_open(str(path), framework="numpy") as fh:
                domain = (fh.metadata() or {}).get("domain", "")
                return cls(domain, fh.get_tensor("next_obs"), fh.get_tensor("next_state"))
        except (SafetensorError, OSError, KeyError) as exc:
            raise ValueError(f"{path} is corrupt ({exc}); re-export the model.") from exc

    def rewards(self, task: str | Task | RewardFn | None, goal: Any = None) -> np.ndarray:
        """Task rewards of every sample, relabelled from the stored next-states."""
        from bfm_gym.envs.relabel import Relabeler

        return Relabeler(self.domain).rewards(self.next_state, task, goal=goal)


def task_z(bfm: Any, samples: InferenceSet, task: str | Task | RewardFn | None = None,
           *, goal: Any = None) -> np.ndarray:
    """Infers the task latent for ``task`` (or reward inference for a ``goal`` position).

    For a goal, the reach reward of the goal is relabelled like any task (robust to
    the velocity part of the observation); ``BFM.goal_z`` gives ``proj(B(g))`` instead.
    """
    if samples.domain and bfm.metadata.domain and samples.domain != bfm.metadata.domain:
        raise ValueError(
            f"Inference samples are from {samples.domain!r} but the model was trained on "
            f"{bfm.metadata.domain!r}."
        )
    rewards = samples.rewards(task, goal=goal)
    if not np.any(rewards):
        raise ValueError(
            "Every inference sample has reward 0 for this task, so z = E[r B] is undefined; "
            "the data never reaches the task's rewarding states."
        )
    return np.asarray(bfm.infer_z(samples.next_obs, rewards), dtype=np.float32)


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
    from bfm_gym.envs.dmc_env import DMCEnv

    results: dict[str, EvalResult] = {}
    jobs: list[tuple[str, dict[str, Any]]] = [
        (t.name if isinstance(t, Task) else str(t), {"task": t}) for t in tasks
    ]
    jobs += [(f"reach@{g[0]:g},{g[1]:g}", {"goal": tuple(g)}) for g in goals or []]
    for label, spec in jobs:
        z = task_z(bfm, samples, spec.get("task"), goal=spec.get("goal"))

        def policy(obs: np.ndarray, z: np.ndarray = z) -> np.ndarray:
            return bfm.act(obs, z)

        returns = rollout_returns(lambda spec=spec: DMCEnv(domain, spec.get("task"), goal=spec.get("goal")),
                                  policy, episodes, seed, progress=progress)
        results[label] = summarize(label, returns, seed, z=[round(float(v), 5) for v in z])
    return results
