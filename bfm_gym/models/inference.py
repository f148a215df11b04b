"""Zero-shot task inference for any BFM family: z from dataset labels, online samples or goals.

Every caller (zero-shot evaluation, the adapters, the plugins) goes through these functions;
the estimator itself is the family's (:meth:`~bfm_gym.models.protocol.BFM.infer_z`: ``E[r B]``
for FB, least squares of r on phi for HILP), so one caller serves every family.

Rewards are paired with the **next** state of a transition: label ``(s, a, s')`` with
``r(s')``. An :class:`InferenceSet` holds dataset next states (observations and simulator
states), so a model can infer z for any task reward without its dataset; the set shipped in a
model folder is attached to the loaded handle (``bfm.samples``).

Example:
    >>> import numpy as np
    >>> from bfm_gym.models.fb import FBConfig, FBHandle, FBModel
    >>> bfm = FBHandle(FBModel(FBConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6))
    >>> obs = np.random.default_rng(0).normal(size=(32, 24)).astype(np.float32)
    >>> online_z(bfm, obs, np.ones(32)).shape
    (8,)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "INFERENCE_FILE",
    "InferenceSet",
    "goal_z",
    "labelled_rewards",
    "online_z",
    "reward_z",
]

INFERENCE_FILE = "inference_samples.safetensors"
"""File name of the shipped inference samples in a model folder."""


@dataclass
class InferenceSet:
    """Dataset next-states used to infer ``z`` from a reward.

    Attributes:
        domain: Domain the states belong to (a Gymnasium id for Gymnasium envs).
        next_obs: ``(n, obs_dim)`` float32.
        next_state: ``(n, state_size)`` float64 simulator states (for relabelling;
            ``state_size`` 0 when the env's state is not recorded).
        obs: ``(n, obs_dim)`` float32 states before the step, for ``fn(obs, action,
            next_obs)`` tasks of Gymnasium envs (None for dm_control domains).
        action: ``(n, action_dim)`` float32 actions in ``[-1, 1]`` (same use).
        reward: ``(n,)`` float64 recorded rewards: the labels of task ``native``.
        env: The :class:`~bfm_gym.envs.gym_env.EnvInfo` dict of a Gymnasium env.
    """

    domain: str
    next_obs: np.ndarray
    next_state: np.ndarray
    obs: np.ndarray | None = None
    action: np.ndarray | None = None
    reward: np.ndarray | None = None
    env: dict[str, Any] | None = None

    def __len__(self) -> int:
        return int(self.next_obs.shape[0])

    @classmethod
    def from_transitions(cls, transitions: Any, n: int = 50_000, seed: int = 0) -> InferenceSet:
        """Samples ``n`` transitions (without replacement) of a dataset."""
        total = len(transitions)
        idx = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
        env = getattr(transitions, "env", None)
        if env is None:
            return cls(transitions.domain, transitions.next_obs[idx], transitions.next_state[idx])
        reward = getattr(transitions, "reward", None)
        return cls(transitions.domain, transitions.next_obs[idx], transitions.next_state[idx],
                   obs=transitions.obs[idx], action=transitions.action[idx],
                   reward=None if reward is None else np.asarray(reward)[idx], env=env)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Writes ``inference_samples.safetensors`` into ``folder`` (atomically)."""
        from safetensors.numpy import save_file

        import json

        from bfm_gym.utils.io import atomic_path

        path = Path(folder) / INFERENCE_FILE
        arrays = {"next_obs": self.next_obs, "next_state": self.next_state, "obs": self.obs,
                  "action": self.action, "reward": self.reward}
        metadata = {"domain": self.domain}
        if self.env is not None:
            metadata["env"] = json.dumps(self.env, sort_keys=True)
        with atomic_path(path) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items() if v is not None},
                      str(tmp), metadata=metadata)
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
            import json

            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
                keys = set(fh.keys())
                extra = {k: fh.get_tensor(k) for k in ("obs", "action", "reward") if k in keys}
                env = json.loads(meta["env"]) if "env" in meta else None
                return cls(meta.get("domain", ""), fh.get_tensor("next_obs"),
                           fh.get_tensor("next_state"), env=env, **extra)
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path} is corrupt ({exc}); re-export the model.") from exc

    def rewards(self, task: Any, goal: Any = None) -> np.ndarray:
        """Task rewards of every sample, relabelled from the stored next-states (for a
        Gymnasium env: recorded rewards, transitions or states; :mod:`bfm_gym.envs.gym_tasks`)."""
        from bfm_gym.envs.relabel import Relabeler

        if self.env is not None:
            from bfm_gym.envs.gym_tasks import label_rewards

            if goal is not None:
                raise ValueError(f"{self.domain} has no goal tasks; give a task instead.")
            return next(iter(label_rewards(self.domain, [task], self, self.env).values())).astype(np.float32)

        return Relabeler(self.domain).rewards(self.next_state, task, goal=goal)


def labelled_rewards(bfm: Any, samples: InferenceSet | None, task: Any = None, *,
                     goal: Any = None, owner: str = "zero-shot inference") -> np.ndarray:
    """Rewards of ``task`` (or of reaching ``goal``) on the samples, checked for use in inference.

    Raises:
        ValueError: No samples, samples of another domain, or every reward is zero.
    """
    if samples is None:
        raise ValueError(
            f"{owner} needs reward-labelled dataset samples (samples=...); use a model folder "
            "that ships inference samples (made by `bfm-gym pretrain`) or pass a dataset."
        )
    domain = getattr(bfm.metadata, "domain", None)
    if samples.domain and domain and samples.domain != domain:
        raise ValueError(f"{owner}: inference samples are from {samples.domain!r} but the model "
                         f"was trained on {domain!r}.")
    rewards = np.asarray(samples.rewards(task, goal=goal), dtype=np.float32)
    if not np.any(rewards):
        raise ValueError(
            f"{owner}: every inference sample has reward 0 for this task, so z cannot be "
            "inferred; the data never reaches the task's rewarding states."
        )
    return rewards


def reward_z(bfm: Any, samples: InferenceSet | None = None, task: Any = None, *,
             goal: Any = None, project: bool = True, max_samples: int | None = None,
             rng: np.random.Generator | None = None,
             owner: str = "zero-shot inference") -> np.ndarray:
    """Zero-shot z of a task from the dataset labels: ``bfm.infer_z(next_obs, r(next_obs))``.

    Args:
        bfm: Any :class:`~bfm_gym.models.protocol.BFM`.
        samples: Inference samples; defaults to the ones attached to ``bfm``.
        task: Task name, :class:`~bfm_gym.envs.tasks.Task` or reward function (None with
            ``goal``: the goal's reach reward).
        goal: A goal position; its reach reward is relabelled like any task.
        project: Put z on the sphere (False: the reward weights w, ``phi^T w ~ r``).
        max_samples: Use a random subset of this many samples (drawn from ``rng``).
        rng: Generator for the subset (seed 0 when None).
        owner: Caller name for error messages.

    Returns:
        ``(z_dim,)`` float32.
    """
    if samples is None:
        samples = getattr(bfm, "samples", None)
    rewards = labelled_rewards(bfm, samples, task, goal=goal, owner=owner)
    assert samples is not None
    next_obs = np.asarray(samples.next_obs)
    if max_samples is not None and len(rewards) > max_samples:
        rng = rng if rng is not None else np.random.default_rng(0)
        idx = np.sort(rng.choice(len(rewards), size=max_samples, replace=False))
        next_obs, rewards = next_obs[idx], rewards[idx]
    return np.asarray(bfm.infer_z(next_obs, rewards, project=project), dtype=np.float32)


def online_z(bfm: Any, next_obs: Any, rewards: Any, *, project: bool = True) -> np.ndarray | None:
    """z from online samples ``(s'_i, r_i)`` collected by the caller; None if every r_i is 0.

    Args:
        bfm: Any :class:`~bfm_gym.models.protocol.BFM`.
        next_obs: ``(n, obs_dim)`` next observations.
        rewards: ``(n,)`` rewards of those transitions.
        project: As in :func:`reward_z`.
    """
    r = np.asarray(rewards, dtype=np.float32).reshape(-1)
    if not np.any(r):
        return None
    return np.asarray(bfm.infer_z(np.asarray(next_obs, dtype=np.float32), r, project=project),
                      dtype=np.float32)


def goal_z(bfm: Any, goal_obs: Any, obs: Any = None) -> np.ndarray:
    """The family's goal latent (``proj(B(g))`` for FB, ``proj(phi(g) - phi(s))`` for HILP)."""
    return np.asarray(bfm.goal_z(goal_obs, obs), dtype=np.float32)


def weights_scale(bfm: Any, w: np.ndarray) -> float:
    """``||w|| / sqrt(d)``: how far the raw reward weights are from the latent sphere."""
    return float(np.linalg.norm(w) / math.sqrt(bfm.z_dim))
