"""``HILPHandle``: the frozen handle on a trained HILP model (the :class:`~bfm_gym.models.protocol.BFM`
protocol). Arrays in, arrays out, validated at this boundary, as the FB handle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from bfm_gym.models._handle import HandleBase
from bfm_gym.models.fb.checkpoint import ModelMetadata

from .checkpoint import FORMAT_NAME, load_model, save_model
from .config import HILPConfig
from .model import HILPModel

__all__ = ["HILPHandle"]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


class HILPHandle(HandleBase):
    """A frozen HILP model: ``pi``, ``phi~`` (centred Hilbert features), ``psi``, inference.

    Args:
        model: The trained model; put in eval mode and frozen.
        metadata: Domain, dataset, spaces bounds and training steps.

    Example:
        >>> bfm = HILPHandle(HILPModel(HILPConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6))
        >>> obs = np.zeros((3, 24), dtype=np.float32)
        >>> z = bfm.sample_z(1, seed=0)[0]
        >>> bfm.act(obs, z).shape, bfm.psi(obs, z).shape, bfm.goal_z(obs[0], obs[1]).shape
        ((3, 6), (2, 3, 8), (8,))
    """

    family = FORMAT_NAME
    """``config.json`` format of this family."""

    def __init__(self, model: HILPModel, metadata: ModelMetadata | None = None) -> None:
        self._model = model.train(False).requires_grad_(False)
        self._metadata = metadata or ModelMetadata()
        self.source: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> HILPHandle:
        """Load a model folder (format ``"bfm_gym.hilp"``).

        Raises:
            CheckpointError: Missing, incomplete, corrupted or of another format.
        """
        model, metadata = load_model(path, device=device)
        bfm = cls(model, metadata)
        bfm.source = str(path)
        return bfm

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Atomically save as a model folder; returns its path."""
        return save_model(self._model, path, self._metadata)

    def to(self, device: str | torch.device) -> HILPHandle:
        """Move the weights to ``device`` (in place); returns self."""
        self._model.to(device)
        return self

    # --- properties -------------------------------------------------------------------------------
    @property
    def model(self) -> HILPModel:
        """The underlying frozen :class:`HILPModel`."""
        return self._model

    @property
    def config(self) -> HILPConfig:
        """Architecture and training settings."""
        return self._model.config

    @property
    def metadata(self) -> ModelMetadata:
        """Domain, dataset, spaces bounds, training steps, library version."""
        return self._metadata

    @property
    def z_dim(self) -> int:
        """Latent dimension d."""
        return self._model.z_dim

    @property
    def gamma(self) -> float:
        """Discount of the successor features."""
        return self._model.gamma

    @property
    def obs_dim(self) -> int:
        """Observation size."""
        return self._model.obs_dim

    @property
    def action_dim(self) -> int:
        """Action size (actions in [-1, 1])."""
        return self._model.action_dim

    @property
    def ensemble(self) -> int:
        """Number of psi heads E."""
        return self._model.config.ensemble

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self._model.device

    def policy_runner(self, batch: int = 1) -> Any:
        """The fused actor path (HILP's actor has FB's layout)."""
        from bfm_gym.models.fb.fast_policy import PolicyRunner

        return PolicyRunner(self._model, batch=batch)

    # --- operations -------------------------------------------------------------------------------
    def act(self, obs: Array, z: np.ndarray | torch.Tensor, noise: bool = False, *,
            seed: int | None = None, grad: bool = False) -> Array:
        """``pi(s, z)``'s mean (or a sample with clipped noise): ``(batch, action_dim)``."""
        s, single = self._obs_rows("obs", obs)
        zz = self._z_rows(z, s.shape[0])
        gen = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        return self._out(self._model.act(s, zz, noise=noise, generator=gen, grad=grad), obs, single)  # type: ignore[return-value]

    def phi(self, obs: Array, z: Any = None) -> Array:
        """Centred Hilbert features ``phi~(s) = phi(s) - mean(phi)``: ``(batch, z_dim)`` (``z`` is
        accepted for FB's signature and ignored)."""
        s, single = self._obs_rows("obs", obs)
        return self._out(self._model.phi(s), obs, single)  # type: ignore[return-value]

    def value(self, obs: Array, goal_obs: Array) -> Array:
        """Goal-conditioned values ``-||phi_k(s) - phi_k(g)||`` of both phi networks: ``(2, batch)``."""
        s, single = self._obs_rows("obs", obs)
        g, _ = self._obs_rows("goal_obs", goal_obs)
        return self._out(self._model.value(s, g.expand_as(s)), obs, single, batch_axis=1)  # type: ignore[return-value]

    def forward(self, obs: Array, action: np.ndarray | torch.Tensor, z: np.ndarray | torch.Tensor, *,
                grad: bool = False) -> Array:
        """``psi_k(s, a, z)`` of every head: ``(E, batch, z_dim)``."""
        s, single = self._obs_rows("obs", obs)
        a, _ = self._rows("action", action, self.action_dim, f"actions, action_dim={self.action_dim}")
        if a.shape[0] != s.shape[0]:
            raise ValueError(f"action has {a.shape[0]} rows but obs has {s.shape[0]}")
        zz = self._z_rows(z, s.shape[0])
        return self._out(self._model.forward(s, a, zz, grad=grad), obs, single, batch_axis=1)  # type: ignore[return-value]

    def psi(self, obs: Array, z: np.ndarray | torch.Tensor, action: np.ndarray | torch.Tensor | None = None,
            *, grad: bool = False) -> Array:
        """Successor features per head (policy-mean action when None): ``(E, batch, z_dim)``."""
        if action is not None:
            return self.forward(obs, action, z, grad=grad)
        s, single = self._obs_rows("obs", obs)
        return self._out(self._model.psi(s, self._z_rows(z, s.shape[0]), grad=grad), obs, single,
                         batch_axis=1)  # type: ignore[return-value]

    def q(self, obs: Array, action: np.ndarray | torch.Tensor, z: np.ndarray | torch.Tensor, *,
          reduce: Literal["mean", "min", "none"] = "mean", grad: bool = False) -> Array:
        """``Q(s, a) = psi(s, a, z)^T z`` reduced over heads: ``(batch,)`` (``"none"``: ``(E, batch)``)."""
        s, single = self._obs_rows("obs", obs)
        a, _ = self._rows("action", action, self.action_dim, f"actions, action_dim={self.action_dim}")
        if a.shape[0] != s.shape[0]:
            raise ValueError(f"action has {a.shape[0]} rows but obs has {s.shape[0]}")
        y = self._model.q(s, a, self._z_rows(z, s.shape[0]), reduce=reduce, grad=grad)
        return self._out(y, obs, single, batch_axis=1 if reduce == "none" else 0)  # type: ignore[return-value]

    def infer_z(self, next_obs: Array, rewards: np.ndarray | torch.Tensor, *,
                project: bool = True) -> Array:
        """Zero-shot ``z = proj(w)``, ``w`` the least-squares weights of the rewards on
        ``phi~(s')`` (``project=False``: ``w`` itself): ``(z_dim,)``.

        Raises:
            ValueError: Wrong shapes, NaN/inf, or fewer samples than features.
        """
        s, _ = self._obs_rows("next_obs", next_obs)
        r = self._reward_rows(rewards, s.shape[0])
        if s.shape[0] < self.z_dim:
            raise ValueError(f"least-squares inference needs at least z_dim={self.z_dim} samples, "
                             f"got {s.shape[0]}; label more transitions")
        return self._out(self._model.infer_z(s, r, project=project), next_obs, False)  # type: ignore[return-value]

    def goal_z(self, goal_obs: Array, obs: Any = None) -> Array:
        """``proj(phi(g) - phi(s))`` for the current ``obs`` (``proj(phi~(g))`` without it)."""
        g, single = self._obs_rows("goal_obs", goal_obs)
        s = None
        if obs is not None:
            s, _ = self._obs_rows("obs", obs)
            s = s.expand_as(g) if s.shape[0] == 1 else s
        return self._out(self._model.goal_z(g, s), goal_obs, single)  # type: ignore[return-value]

    def project(self, z: Array) -> Array:
        """``proj(z) = sqrt(d) z / ||z||``; keeps z's shape."""
        t, single = self._rows("z", z, self.z_dim, f"latents, z_dim={self.z_dim}")
        return self._out(self._model.project(t), z, single)  # type: ignore[return-value]

    def sample_z(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """``(n, z_dim)`` latents uniform on the sphere."""
        gen = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        return self._model.sample_z(n, generator=gen).cpu().numpy()

    def __repr__(self) -> str:
        m = self._metadata
        return (f"HILPHandle(domain={m.domain!r}, obs_dim={self.obs_dim}, action_dim={self.action_dim}, "
                f"z_dim={self.z_dim}, training_steps={m.training_steps})")
