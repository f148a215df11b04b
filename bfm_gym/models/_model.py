"""What the model families' ``nn.Module`` models share: the dimension checks, the latent
sphere (``sample_z``), and the actor / successor-feature operations ``act``, ``forward``,
``psi`` and ``q``, which read the same way whether F is FB's forward map or HILP's psi.

A family model subclasses :class:`FamilyModel`, registers a buffer named by
``_device_buffer`` (its device is the model's), and builds ``forward_map`` (``(E, batch, d)``
successor features) and ``actor`` (pi's mean). It overrides :meth:`FamilyModel.project` when
its latents are not one sphere (FB-AWARE's blocks).
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch
from torch import nn

from .ops import project_sphere, sample_action

__all__ = ["FamilyModel", "grad_context"]


def grad_context(grad: bool) -> contextlib.AbstractContextManager[None]:
    """``torch.enable_grad()`` when ``grad`` else ``torch.no_grad()``."""
    return torch.enable_grad() if grad else torch.no_grad()


class FamilyModel(nn.Module):
    """Base of :class:`~bfm_gym.models.fb.FBModel` and :class:`~bfm_gym.models.hilp.HILPModel`.

    Args:
        config: The family's config (``z_dim``, ``gamma``, ``actor_std``, ``stddev_clip``).
        obs_dim: Observation size.
        action_dim: Action size; actions live in [-1, 1]^action_dim.
    """

    _device_buffer: str
    """Name of a buffer every subclass registers; the model's device is its device."""
    _handle_class: str | None = None
    """``"module:Class"`` of the family's handle (imported on first use by :meth:`as_bfm`)."""
    forward_map: nn.Module
    actor: nn.Module

    def __init__(self, config: Any, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        if obs_dim < 1 or action_dim < 1:
            raise ValueError(
                f"obs_dim and action_dim must be >= 1, got obs_dim={obs_dim}, action_dim={action_dim}"
            )
        self.config = config
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)

    def as_bfm(self) -> Any:
        """This model behind the :class:`~bfm_gym.models.protocol.BFM` protocol: the family's
        handle on it (which freezes it). The wrappers accept a bare model through this.

        Raises:
            TypeError: The family names no handle class.
        """
        if self._handle_class is None:
            raise TypeError(f"{type(self).__name__} names no handle class (_handle_class); "
                            "wrap it in its family's handle instead.")
        from bfm_gym.utils.imports import resolve_callable

        return resolve_callable(self._handle_class, what=f"{type(self).__name__} handle")(self)

    z_dim = property(lambda self: self.config.z_dim, doc="Latent dimension d.")
    gamma = property(lambda self: self.config.gamma, doc="Discount of the successor features.")
    device = property(
        lambda self: getattr(self, self._device_buffer).device, doc="Device of the parameters."
    )

    # --- z ----------------------------------------------------------------------------------------
    def project(self, z: torch.Tensor) -> torch.Tensor:
        """``proj(z) = sqrt(d) z / ||z||`` along the last axis (docs/algorithms.md#notation)."""
        return project_sphere(z)

    def sample_z(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` latents uniform on the latent sphere(s): ``proj(N(0, I_d))``.

        Args:
            n: Number of latents.
            generator: Seeded generator (on ``device``); the global RNG when None.
            device: Defaults to the model's device.

        Returns:
            ``(n, d)`` float32.
        """
        device = self.device if device is None else torch.device(device)
        return self.project(torch.randn(n, self.z_dim, generator=generator, device=device))

    # --- pi, F / psi, Q ---------------------------------------------------------------------------
    def forward(
        self, obs: torch.Tensor, action: torch.Tensor, z: torch.Tensor, *, grad: bool = False
    ) -> torch.Tensor:
        """Successor features of every ensemble head, ``F_k(s, a, z)`` / ``psi_k(s, a, z)``.

        Args:
            obs: ``(batch, obs_dim)``.
            action: ``(batch, action_dim)``.
            z: ``(batch, d)`` (projected; see :meth:`project`).
            grad: Track gradients (e.g. w.r.t. z).

        Returns:
            ``(E, batch, d)``.
        """
        with grad_context(grad):
            return self.forward_map(obs, action, z)

    def psi(
        self,
        obs: torch.Tensor,
        z: torch.Tensor,
        action: torch.Tensor | None = None,
        *,
        grad: bool = False,
    ) -> torch.Tensor:
        """Successor features of every head; with no action, the policy mean ``a = pi(s, z)``.

        Returns:
            ``(E, batch, d)``.
        """
        with grad_context(grad):
            if action is None:
                action = self.actor(obs, z)
            return self.forward_map(obs, action, z)

    def q(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        z: torch.Tensor,
        *,
        reduce: Literal["mean", "min", "none"] = "mean",
        grad: bool = False,
    ) -> torch.Tensor:
        """``Q_k(s, a) = F_k(s, a, z)^T z`` (docs/algorithms.md#zero-shot-inference).

        Args:
            obs: ``(batch, obs_dim)``.
            action: ``(batch, action_dim)``.
            z: ``(batch, d)``.
            reduce: ``"mean"`` or ``"min"`` over heads -> ``(batch,)``; ``"none"`` -> ``(E, batch)``.
            grad: Track gradients.

        Returns:
            ``(batch,)`` or ``(E, batch)``.
        """
        with grad_context(grad):
            qs = (self.forward_map(obs, action, z) * z).sum(-1)
            if reduce == "mean":
                return qs.mean(0)
            if reduce == "min":
                return qs.min(0).values
            if reduce == "none":
                return qs
            raise ValueError(f"reduce must be 'mean', 'min' or 'none', got {reduce!r}")

    def act(
        self,
        obs: torch.Tensor,
        z: torch.Tensor,
        noise: bool = False,
        *,
        generator: torch.Generator | None = None,
        grad: bool = False,
    ) -> torch.Tensor:
        """Action of ``pi(. | s, z)``: the mean, or a sample with clipped Gaussian noise.

        Args:
            obs: ``(batch, obs_dim)``.
            z: ``(batch, d)``.
            noise: Add ``clip(N(0, actor_std^2), +-stddev_clip)`` then clip to [-1, 1].
            generator: RNG for the noise (global RNG when None).
            grad: Track gradients (through the mean; the noise is reparameterised).

        Returns:
            ``(batch, action_dim)`` in [-1, 1].
        """
        with grad_context(grad):
            mu = self.actor(obs, z)
            if not noise:
                return mu
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            return sample_action(mu, self.config.actor_std, self.config.stddev_clip, eps)

    def extra_repr(self) -> str:
        return f"obs_dim={self.obs_dim}, action_dim={self.action_dim}, z_dim={self.z_dim}, gamma={self.gamma}"
