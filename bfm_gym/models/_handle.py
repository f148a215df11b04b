"""Shared plumbing of the family handles: input validation at the array boundary, attached
inference samples and a generic policy runner. Families subclass :class:`HandleBase`; a
plugin family may too (it is not required: the :class:`~bfm_gym.models.protocol.BFM`
protocol is what callers rely on)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from bfm_gym.models.inference import InferenceSet

__all__ = ["ActRunner", "HandleBase"]


class ActRunner:
    """Generic :class:`~bfm_gym.models.protocol.PolicyRunnerLike`: ``bfm.act`` on numpy buffers.

    Args:
        bfm: Any model with ``act``, ``obs_dim``, ``z_dim``.
        batch: Rows per call.
    """

    path = "act"

    def __init__(self, bfm: Any, batch: int = 1) -> None:
        self._bfm = bfm
        self.batch = int(batch)
        self.obs = np.zeros((self.batch, bfm.obs_dim), np.float32)
        self.z = np.zeros((self.batch, bfm.z_dim), np.float32)

    def __call__(self) -> np.ndarray:
        return np.asarray(self._bfm.act(self.obs, self.z), dtype=np.float32)


_UNSET: Any = object()


class HandleBase:
    """Validation helpers and the ``samples`` / ``source`` attributes of a handle."""

    source: str | None = None
    _samples: Any = _UNSET

    # subclasses define these
    obs_dim: int
    z_dim: int
    device: torch.device

    @property
    def samples(self) -> InferenceSet | None:
        """Inference samples shipped in :attr:`source` (loaded on first use), or set by hand."""
        if self._samples is _UNSET:
            from bfm_gym.models.inference import INFERENCE_FILE, InferenceSet

            folder = self.source
            found = None
            if folder is not None:
                from pathlib import Path

                if (Path(folder) / INFERENCE_FILE).is_file():
                    found = InferenceSet.load(folder)
            self._samples = found
        return self._samples

    @samples.setter
    def samples(self, value: InferenceSet | None) -> None:
        self._samples = value

    @property
    def block_sizes(self) -> tuple[int, ...]:
        """One latent block: ``(z_dim,)``."""
        return (self.z_dim,)

    def policy_runner(self, batch: int = 1) -> Any:
        """A generic :class:`ActRunner` (families with a faster path override this)."""
        return ActRunner(self, batch)

    # --- input handling -------------------------------------------------------------------------
    def _rows(
        self, name: str, x: np.ndarray | torch.Tensor, dim: int, what: str
    ) -> tuple[torch.Tensor, bool]:
        """``(batch, dim)`` float32 tensor on the model device, and whether x was a single row."""
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            try:
                x = np.asarray(x, dtype=np.float32)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{name} must be a numpy array or torch tensor of shape (batch, {dim}) or ({dim},), got {type(x).__name__}"
                ) from err
        if x.ndim not in (1, 2) or x.shape[-1] != dim:
            raise ValueError(
                f"{name} must have shape (batch, {dim}) or ({dim},) ({what}), got {tuple(x.shape)}"
            )
        if isinstance(x, np.ndarray) and not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)  # torch refuses negative strides (x[::-1])
        t = torch.as_tensor(x).to(device=self.device, dtype=torch.float32)
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds NaN or inf values; expected finite {what}")
        single = t.ndim == 1
        return (t.unsqueeze(0) if single else t), single

    def _obs_rows(self, name: str, x: Any) -> tuple[torch.Tensor, bool]:
        return self._rows(name, x, self.obs_dim, f"observations, obs_dim={self.obs_dim}")

    def _z_rows(self, z: np.ndarray | torch.Tensor, batch: int) -> torch.Tensor:
        t, _ = self._rows("z", z, self.z_dim, f"latents, z_dim={self.z_dim}")
        if t.shape[0] == batch:
            return t
        if t.shape[0] == 1:
            return t.expand(batch, -1)
        raise ValueError(
            f"z has {t.shape[0]} rows but the observations have {batch}; pass one z per row or a single ({self.z_dim},) z"
        )

    def _reward_rows(self, rewards: Any, n: int) -> torch.Tensor:
        if not isinstance(rewards, (np.ndarray, torch.Tensor)):
            rewards = np.asarray(rewards, dtype=np.float32)
        if tuple(rewards.shape) not in ((n,), (n, 1)):
            raise ValueError(
                f"rewards must have shape ({n},) or ({n}, 1) to match next_obs, got {tuple(rewards.shape)}"
            )
        r = torch.as_tensor(rewards).to(device=self.device, dtype=torch.float32).reshape(n)
        if not bool(torch.isfinite(r).all()):
            raise ValueError(
                f"rewards hold {int((~torch.isfinite(r)).sum())} NaN/inf value(s); expected finite rewards"
            )
        return r

    @staticmethod
    def _out(
        y: torch.Tensor, like: np.ndarray | torch.Tensor, single: bool, batch_axis: int = 0
    ) -> np.ndarray | torch.Tensor:
        if single:
            y = y.squeeze(batch_axis)
        if isinstance(like, torch.Tensor):
            return y.to(like.device)
        return y.detach().cpu().numpy().astype(np.float32, copy=False)
