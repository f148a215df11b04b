"""Offline transitions with episode boundaries, for HILP's goal sampling.

Goals for the Hilbert value come from the same trajectory's future: for transition i of an
episode, ``k ~ Geometric(1 - future)`` (k >= 1) and the goal is the next state of transition
``min(i + k - 1, last of the episode)`` (k = 1: s' itself); with probability ``p_random_goal``
the goal is a random dataset state instead.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from bfm_gym.models.fb.replay import OfflineReplay

__all__ = ["GoalBatch", "GoalReplay"]


class GoalBatch(NamedTuple):
    """``(s, a, s', terminated, g)``; ``g`` is ``(N, obs_dim)``."""

    obs: torch.Tensor
    action: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    goal: torch.Tensor


class GoalReplay(OfflineReplay):
    """:class:`~bfm_gym.models.fb.replay.OfflineReplay` plus the episode of each transition.

    Args:
        obs, action, next_obs, terminated, device: As :class:`OfflineReplay`.
        episode: ``(n,)`` episode index of each transition; an episode's transitions must be
            contiguous and in time order (as ``bfm_gym.data.load_transitions`` returns them).
            None: the arrays are one trajectory.

    Raises:
        ValueError: Shapes disagree, or an episode's transitions are not contiguous.
    """

    def __init__(self, obs: np.ndarray | torch.Tensor, action: np.ndarray | torch.Tensor,
                 next_obs: np.ndarray | torch.Tensor,
                 terminated: np.ndarray | torch.Tensor | None = None,
                 episode: np.ndarray | torch.Tensor | None = None,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(obs, action, next_obs, terminated, device=device)
        n = len(self)
        ep = np.zeros(n, np.int64) if episode is None else np.asarray(
            episode.detach().cpu().numpy() if isinstance(episode, torch.Tensor) else episode
        ).reshape(-1)
        if ep.shape[0] != n:
            raise ValueError(f"GoalReplay: episode has {ep.shape[0]} rows but obs has {n}")
        starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
        if len(np.unique(ep)) != len(starts):
            raise ValueError("GoalReplay: an episode's transitions are not contiguous; pass them "
                             "grouped by episode, in time order")
        ends = np.r_[starts[1:], n] - 1
        last = np.repeat(ends, np.diff(np.r_[starts, n]))
        self.episode = torch.as_tensor(ep, device=self.device)
        self.episode_last = torch.as_tensor(last, dtype=torch.int64, device=self.device)

    def to(self, device: str | torch.device) -> GoalReplay:
        device = torch.device(device)
        if device == self.device:
            return self
        return GoalReplay(self.obs, self.action, self.next_obs, self.terminated,
                          self.episode, device=device)

    def sample_goals(self, batch_size: int, generator: torch.Generator, *, future: float,
                     p_random_goal: float) -> GoalBatch:
        """``batch_size`` transitions with goals (see the module docstring)."""
        n, dev = len(self), self.device
        idx = torch.randint(n, (batch_size,), generator=generator, device=dev)
        u = 1.0 - torch.rand(batch_size, generator=generator, device=dev)  # (0, 1]
        k = torch.floor(torch.log(u) / math.log(future)).long() + 1
        future_idx = torch.minimum(idx + k - 1, self.episode_last[idx])
        random_idx = torch.randint(n, (batch_size,), generator=generator, device=dev)
        use_random = torch.rand(batch_size, generator=generator, device=dev) < p_random_goal
        goal_idx = torch.where(use_random, random_idx, future_idx)
        return GoalBatch(self.obs[idx], self.action[idx], self.next_obs[idx],
                         self.terminated[idx], self.next_obs[goal_idx])
