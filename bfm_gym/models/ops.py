"""Small tensor operations every family uses: the latent sphere and the actor's noisy actions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F_

__all__ = ["project_sphere", "sample_action"]


def project_sphere(x: torch.Tensor) -> torch.Tensor:
    """``proj(x) = sqrt(d) x / max(||x||, 1e-12)`` along the last dimension (docs/algorithms.md#notation).

    Args:
        x: ``(..., d)``.

    Returns:
        ``(..., d)``, every row of norm sqrt(d).
    """
    return math.sqrt(x.shape[-1]) * F_.normalize(x, dim=-1)


def sample_action(
    mu: torch.Tensor, std: float, clip: float, noise: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Truncated-normal action ``clip(mu + clip(std * noise, -clip, clip), -1, 1)``.

    The final clip to [-1+eps, 1-eps] is straight-through (identity gradient), as metamotivo's
    ``TruncatedNormal._clamp`` and opti-bfm's actor loss do (docs/algorithms.md#pitfall-action-clip), so the TD3 actor
    gradient does not vanish at the action bounds.

    Args:
        mu: ``(batch, action_dim)`` policy mean.
        std: Noise standard deviation.
        clip: Noise clip.
        noise: ``(batch, action_dim)`` standard normal draws (drawn by the caller from a seeded
            generator, so the computation is deterministic and compile-friendly).
        eps: Margin kept from the bounds.

    Returns:
        ``(batch, action_dim)``.
    """
    x = mu + torch.clamp(noise * std, -clip, clip)
    clamped = torch.clamp(x, -1.0 + eps, 1.0 - eps)
    return x - x.detach() + clamped.detach()
