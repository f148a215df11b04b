"""``FBHandle`` (historical name ``BFM``): the frozen handle on a trained FB model.

It implements the :class:`bfm_gym.models.protocol.BFM` protocol that wrappers and adapters use.

Arrays in, arrays out: numpy inputs give numpy outputs (float32), torch inputs give torch
outputs on the input's device. Inputs may be batched ``(batch, dim)`` or a single row ``(dim,)``
(the output then has no batch dimension). Everything is validated at this boundary and
errors name what was expected and what was received.

Latents are used as given: project them first (:meth:`BFM.project`), as every reference
implementation expects (docs/algorithms.md#pitfall-projection); the latent-action wrapper does this in one place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from .._handle import HandleBase
from .checkpoint import FORMAT_NAME, ModelMetadata, load_model, save_model
from .config import FBConfig
from .model import FBModel

__all__ = ["BFM", "FBHandle"]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


class FBHandle(HandleBase):
    """A frozen FB behavioural foundation model: ``pi``, ``B``/``phi``, ``F``/``psi``, inference.

    Args:
        model: The trained model; it is put in eval mode and frozen (``requires_grad=False``).
        metadata: Domain, dataset, spaces bounds and training steps.

    Example:
        >>> bfm = FBHandle(FBModel(FBConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6))
        >>> obs = np.zeros((3, 24), dtype=np.float32)
        >>> z = bfm.sample_z(1, seed=0)[0]
        >>> bfm.act(obs, z).shape, bfm.act(obs[0], z).shape, type(bfm.act(obs, z)).__name__
        ((3, 6), (6,), 'ndarray')
        >>> bfm.infer_z(obs, np.ones(3)).shape
        (8,)
    """

    family = FORMAT_NAME
    """``config.json`` format of this family."""

    def __init__(self, model: FBModel, metadata: ModelMetadata | None = None) -> None:
        self._model = model.train(False).requires_grad_(False)
        self._metadata = metadata or ModelMetadata()
        self.source: str | None = None
        """Folder this model was loaded from (None for an in-memory model)."""

    # --- persistence ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> FBHandle:
        """Load a model folder (``config.json`` + ``model.safetensors``).

        Raises:
            CheckpointError: The folder is missing, incomplete, corrupted or of an unknown format.
        """
        model, metadata = load_model(path, device=device)
        bfm = cls(model, metadata)
        bfm.source = str(path)  # lets wrappers record a rebuildable spec
        return bfm

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Atomically save as a model folder; returns its path."""
        return save_model(self._model, path, self._metadata)

    def to(self, device: str | torch.device) -> FBHandle:
        """Move the weights to ``device`` (in place); returns self."""
        self._model.to(device)
        return self

    # --- properties -------------------------------------------------------------------------------
    @property
    def model(self) -> FBModel:
        """The underlying frozen :class:`FBModel`."""
        return self._model

    @property
    def config(self) -> FBConfig:
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
        """Discount the model was trained with."""
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
        """Number of F heads E."""
        return self._model.config.ensemble

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self._model.device

    @property
    def block_sizes(self) -> tuple[int, ...]:
        """Latent blocks: ``config.block_sizes`` for an auto-regressive model, else ``(z_dim,)``."""
        c = self._model.config
        return tuple(c.block_sizes) if c.ar_blocks > 1 else (c.z_dim,)

    def policy_runner(self, batch: int = 1) -> Any:
        """The fused numpy/torch actor (:class:`~bfm_gym.models.fb.fast_policy.PolicyRunner`)."""
        from .fast_policy import PolicyRunner

        return PolicyRunner(self._model, batch=batch)

    @property
    def cov(self) -> np.ndarray:
        """``(d, d)`` uncentred ``E[B B^T]`` over dataset states (identity if never finalized)."""
        return self._model.cov.detach().cpu().numpy().copy()

    @property
    def cov_finalized(self) -> bool:
        """True when :attr:`cov` was computed from data."""
        return bool(self._model.cov_samples.item() > 0)

    # --- operations -------------------------------------------------------------------------------
    def act(
        self,
        obs: Array,
        z: np.ndarray | torch.Tensor,
        noise: bool = False,
        *,
        seed: int | None = None,
        grad: bool = False,
    ) -> Array:
        """Action of ``pi(. | s, z)``: the mean, or a noisy sample (std 0.2 clipped to 0.3, then [-1, 1]).

        Args:
            obs: ``(batch, obs_dim)`` or ``(obs_dim,)``.
            z: ``(batch, z_dim)`` or ``(z_dim,)`` (broadcast over the batch).
            noise: Sample instead of returning the mean.
            seed: Seed of the noise (global torch RNG when None).
            grad: Track gradients (torch inputs; e.g. w.r.t. z).

        Returns:
            ``(batch, action_dim)`` or ``(action_dim,)``, same type as ``obs``.
        """
        s, single = self._rows("obs", obs, self.obs_dim, f"observations, obs_dim={self.obs_dim}")
        zz = self._z_rows(z, s.shape[0])
        gen = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        return self._out(self._model.act(s, zz, noise=noise, generator=gen, grad=grad), obs, single)  # type: ignore[return-value]

    def backward(self, obs: Array, z: np.ndarray | torch.Tensor | None = None) -> Array:
        """Backward embedding ``B(s)`` (``B(s, z)`` for an auto-regressive model; see ``FBModel.backward``).

        Returns:
            ``(batch, z_dim)`` or ``(z_dim,)``.
        """
        s, single = self._rows("obs", obs, self.obs_dim, f"observations, obs_dim={self.obs_dim}")
        zz = None if z is None else self._z_rows(z, s.shape[0])
        return self._out(self._model.backward(s, zz), obs, single)  # type: ignore[return-value]

    def phi(self, obs: Array, z: np.ndarray | torch.Tensor | None = None) -> Array:
        """State features ``phi(s) = Cov^{-1} B(s)``: ``(batch, z_dim)`` or ``(z_dim,)``."""
        s, single = self._rows("obs", obs, self.obs_dim, f"observations, obs_dim={self.obs_dim}")
        zz = None if z is None else self._z_rows(z, s.shape[0])
        return self._out(self._model.phi(s, zz), obs, single)  # type: ignore[return-value]

    def forward(
        self,
        obs: Array,
        action: np.ndarray | torch.Tensor,
        z: np.ndarray | torch.Tensor,
        *,
        grad: bool = False,
    ) -> Array:
        """Forward embedding of every head ``F_k(s, a, z)``.

        Returns:
            ``(E, batch, z_dim)`` or ``(E, z_dim)`` for a single row.
        """
        s, single = self._rows("obs", obs, self.obs_dim, f"observations, obs_dim={self.obs_dim}")
        a, _ = self._rows(
            "action", action, self.action_dim, f"actions, action_dim={self.action_dim}"
        )
        if a.shape[0] != s.shape[0]:
            raise ValueError(f"action has {a.shape[0]} rows but obs has {s.shape[0]}")
        zz = self._z_rows(z, s.shape[0])
        return self._out(self._model.forward(s, a, zz, grad=grad), obs, single, batch_axis=1)  # type: ignore[return-value]

    def psi(
        self,
        obs: Array,
        z: np.ndarray | torch.Tensor,
        action: np.ndarray | torch.Tensor | None = None,
        *,
        grad: bool = False,
    ) -> Array:
        """Successor features ``psi(s, a, z) = F(s, a, z)`` (policy-mean action when None): ``(E, batch, z_dim)``."""
        if action is None:
            s, single = self._rows(
                "obs", obs, self.obs_dim, f"observations, obs_dim={self.obs_dim}"
            )
            return self._out(
                self._model.psi(s, self._z_rows(z, s.shape[0]), grad=grad),
                obs,
                single,
                batch_axis=1,
            )  # type: ignore[return-value]
        return self.forward(obs, action, z, grad=grad)

    def q(
        self,
        obs: Array,
        action: np.ndarray | torch.Tensor,
        z: np.ndarray | torch.Tensor,
        *,
        reduce: Literal["mean", "min", "none"] = "mean",
        grad: bool = False,
    ) -> Array:
        """``Q(s, a) = F(s, a, z)^T z``; ``reduce`` over heads: ``(batch,)`` (``"none"``: ``(E, batch)``)."""
        s, single = self._rows("obs", obs, self.obs_dim, f"observations, obs_dim={self.obs_dim}")
        a, _ = self._rows(
            "action", action, self.action_dim, f"actions, action_dim={self.action_dim}"
        )
        if a.shape[0] != s.shape[0]:
            raise ValueError(f"action has {a.shape[0]} rows but obs has {s.shape[0]}")
        zz = self._z_rows(z, s.shape[0])
        y = self._model.q(s, a, zz, reduce=reduce, grad=grad)
        return self._out(y, obs, single, batch_axis=1 if reduce == "none" else 0)  # type: ignore[return-value]

    def infer_z(
        self, next_obs: Array, rewards: np.ndarray | torch.Tensor, *, project: bool = True
    ) -> Array:
        """Zero-shot reward inference ``z_r = proj(mean_i r_i B(s'_i))`` (docs/algorithms.md#zero-shot-inference).

        Args:
            next_obs: ``(n, obs_dim)`` next states of reward-labelled transitions.
            rewards: ``(n,)`` or ``(n, 1)`` rewards computed on those next states.
            project: Project onto the latent sphere (False: the raw ``E[r B]``).

        Returns:
            ``(z_dim,)``.

        Raises:
            ValueError: Wrong shapes, or NaN/inf in the inputs.
        """
        s, _ = self._rows(
            "next_obs", next_obs, self.obs_dim, f"next observations, obs_dim={self.obs_dim}"
        )
        r = self._reward_rows(rewards, s.shape[0])
        return self._out(self._model.infer_z(s, r, project=project), next_obs, False)  # type: ignore[return-value]

    def goal_z(self, goal_obs: Array, obs: Any = None) -> Array:
        """Goal inference ``z = proj(B(g))``: ``(batch, z_dim)`` or ``(z_dim,)``; ``obs`` is not
        needed by FB (accepted for the protocol) and ignored."""
        s, single = self._rows(
            "goal_obs", goal_obs, self.obs_dim, f"goal observations, obs_dim={self.obs_dim}"
        )
        return self._out(self._model.goal_z(s), goal_obs, single)  # type: ignore[return-value]

    def project(self, z: Array) -> Array:
        """``proj(z) = sqrt(d) z / ||z||`` (per block for an auto-regressive model); keeps z's shape."""
        t, single = self._rows("z", z, self.z_dim, f"latents, z_dim={self.z_dim}")
        # _rows rejects NaN; a zero z maps to zero (normalize clamps the norm at 1e-12)
        return self._out(self._model.project(t), z, single)  # type: ignore[return-value]

    def sample_z(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """``n`` latents uniform on the latent sphere, as a ``(n, z_dim)`` numpy array."""
        gen = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        return self._model.sample_z(n, generator=gen).cpu().numpy()

    def __repr__(self) -> str:
        m = self._metadata
        return (
            f"BFM(domain={m.domain!r}, obs_dim={self.obs_dim}, action_dim={self.action_dim}, z_dim={self.z_dim}, "
            f"ar_blocks={self.config.ar_blocks}, training_steps={m.training_steps})"
        )


BFM = FBHandle
"""Historical name of :class:`FBHandle` (code written before the model families)."""
