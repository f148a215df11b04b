"""Offline transition storage for FB training, sampled on-device with a seeded generator."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["OfflineReplay", "TransitionBatch"]


class TransitionBatch(NamedTuple):
    """A batch of transitions ``(s, a, s', terminated)``.

    Attributes:
        obs: ``(N, obs_dim)`` float32.
        action: ``(N, action_dim)`` float32 in [-1, 1].
        next_obs: ``(N, obs_dim)`` float32.
        terminated: ``(N, 1)`` float32, 1 where s' is terminal (not merely truncated).
    """

    obs: torch.Tensor
    action: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


def _as_2d(name: str, array: object, n: int | None) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"OfflineReplay: {name} must have shape (n, dim), got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(
            f"OfflineReplay: {name} has {a.shape[0]} rows but obs has {n}; all arrays must hold the same transitions"
        )
    if not np.issubdtype(a.dtype, np.number) and a.dtype != np.bool_:
        raise ValueError(f"OfflineReplay: {name} must be numeric, got dtype {a.dtype}")
    return a


class OfflineReplay:
    """Fixed transitions held as tensors on one device.

    Args:
        obs: ``(n, obs_dim)`` states s.
        action: ``(n, action_dim)`` actions a taken in s, in [-1, 1].
        next_obs: ``(n, obs_dim)`` states s'.
        terminated: ``(n,)`` true where s' is terminal. DMC never terminates: pass zeros
            (time-limit truncation is not termination, docs/algorithms.md#pitfall-terminal). Defaults to zeros.
        device: Where the tensors live (and indices are drawn).

    Raises:
        ValueError: Shapes disagree, arrays are empty, or hold NaN/inf.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> replay = OfflineReplay(rng.normal(size=(100, 3)), rng.uniform(-1, 1, (100, 2)), rng.normal(size=(100, 3)))
        >>> batch = replay.sample(8, torch.Generator().manual_seed(0))
        >>> batch.obs.shape, batch.terminated.shape
        (torch.Size([8, 3]), torch.Size([8, 1]))
    """

    def __init__(
        self,
        obs: np.ndarray | torch.Tensor,
        action: np.ndarray | torch.Tensor,
        next_obs: np.ndarray | torch.Tensor,
        terminated: np.ndarray | torch.Tensor | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        arrays = {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for k, v in
                  {"obs": obs, "action": action, "next_obs": next_obs, "terminated": terminated}.items()}  # fmt: skip
        o = _as_2d("obs", arrays["obs"], None)
        n = o.shape[0]
        if n < 2:
            raise ValueError(f"OfflineReplay needs at least 2 transitions, got {n}")
        a = _as_2d("action", arrays["action"], n)
        o2 = _as_2d("next_obs", arrays["next_obs"], n)
        if o2.shape[1] != o.shape[1]:
            raise ValueError(
                f"OfflineReplay: next_obs has {o2.shape[1]} features but obs has {o.shape[1]}"
            )
        t = (
            np.zeros((n, 1))
            if arrays["terminated"] is None
            else _as_2d("terminated", arrays["terminated"], n)
        )
        if t.shape[1] != 1:
            raise ValueError(
                f"OfflineReplay: terminated must have shape (n,) or (n, 1), got {t.shape}"
            )
        for name, arr in (("obs", o), ("action", a), ("next_obs", o2)):
            if not np.isfinite(arr).all():
                raise ValueError(
                    f"OfflineReplay: {name} holds NaN or inf values; clean the dataset first"
                )
        self.device = torch.device(device)
        self.obs = torch.as_tensor(o, dtype=torch.float32, device=self.device)
        self.action = torch.as_tensor(a, dtype=torch.float32, device=self.device)
        self.next_obs = torch.as_tensor(o2, dtype=torch.float32, device=self.device)
        self.terminated = torch.as_tensor(t, dtype=torch.float32, device=self.device)
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return self.obs.shape[0]

    @property
    def obs_dim(self) -> int:
        """Observation size."""
        return self.obs.shape[1]

    @property
    def action_dim(self) -> int:
        """Action size."""
        return self.action.shape[1]

    def to(self, device: str | torch.device) -> OfflineReplay:
        """This replay with its tensors on ``device`` (self when already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        return OfflineReplay(self.obs, self.action, self.next_obs, self.terminated, device=device)

    def sample(self, batch_size: int, generator: torch.Generator) -> TransitionBatch:
        """``batch_size`` transitions drawn uniformly with replacement.

        Args:
            batch_size: N.
            generator: A seeded generator on this replay's device.

        Returns:
            A :class:`TransitionBatch` on this replay's device.
        """
        idx = torch.randint(len(self), (batch_size,), generator=generator, device=self.device)
        return TransitionBatch(
            self.obs[idx], self.action[idx], self.next_obs[idx], self.terminated[idx]
        )

    def fingerprint(self) -> str:
        """SHA-256 of the stored float32 arrays: identifies the dataset in checkpoints."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for t in (self.obs, self.action, self.next_obs, self.terminated):
                h.update(str(tuple(t.shape)).encode())
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint
