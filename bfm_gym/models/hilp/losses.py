"""HILP losses: the IQL-style expectile value loss of phi, the successor-feature TD loss and
the TD3 actor loss (shared with FB)."""

from __future__ import annotations

import torch
import torch.nn.functional as F_

from bfm_gym.models.fb.losses import td3_actor_loss

__all__ = ["expectile_loss", "hilbert_value_loss", "sf_loss", "td3_actor_loss"]


def expectile_loss(adv: torch.Tensor, diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """``mean(|tau - 1(adv < 0)| diff^2)``: weight tau where ``adv >= 0``, else 1 - tau."""
    weight = torch.where(adv >= 0, expectile, 1.0 - expectile)
    return (weight * diff.pow(2)).mean()


def _values(nets: tuple[torch.nn.Module, torch.nn.Module], obs: torch.Tensor,
            goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = []
    for net in nets:
        sq = (net(obs) - net(goal)).pow(2).sum(-1)
        out.append(-torch.sqrt(torch.clamp(sq, min=1e-6)))  # clamp: finite gradient at s = g
    return out[0], out[1]


def hilbert_value_loss(
    online: tuple[torch.nn.Module, torch.nn.Module],
    target: tuple[torch.nn.Module, torch.nn.Module],
    obs: torch.Tensor,
    next_obs: torch.Tensor,
    goal: torch.Tensor,
    gamma: float,
    expectile: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Goal-conditioned value loss of the Hilbert representation.

    Reward -1 per step, 0 (and the episode ends) when ``s == g``. Two values
    ``V_k(s, g) = -||phi_k(s) - phi_k(g)||`` are fitted to their own targets
    ``q_k = r + gamma * mask * V'_k(s', g)`` (targets from the Polyak copies), with expectile
    weights set by the shared advantage ``r + gamma * mask * min_k V'_k(s', g) - mean_k
    V'_k(s, g)``, as in IQL.

    Returns:
        ``(loss, metrics)``.
    """
    with torch.no_grad():
        success = (torch.linalg.vector_norm(obs - goal, dim=-1) < 1e-6).float()
        reward, mask = success - 1.0, 1.0 - success
        nv1, nv2 = _values(target, next_obs, goal)
        q = reward + gamma * mask * torch.minimum(nv1, nv2)
        v1_t, v2_t = _values(target, obs, goal)
        adv = q - 0.5 * (v1_t + v2_t)
        q1 = reward + gamma * mask * nv1
        q2 = reward + gamma * mask * nv2
    v1, v2 = _values(online, obs, goal)
    loss = expectile_loss(adv, q1 - v1, expectile) + expectile_loss(adv, q2 - v2, expectile)
    v = 0.5 * (v1 + v2).detach()
    return loss, {"value_loss": loss.detach(), "v_mean": v.mean(), "adv_mean": adv.mean()}


def sf_loss(psi: torch.Tensor, target: torch.Tensor, z: torch.Tensor, q_loss: bool) -> torch.Tensor:
    """TD loss of the successor features of every head, summed over heads.

    Args:
        psi: ``(E, batch, d)`` online ``psi_k(s, a, z)``.
        target: ``(batch, d)`` ``phi~(s') + gamma * psi_targ(s', a', z)``.
        z: ``(batch, d)``.
        q_loss: Fit only ``psi^T z`` (a scalar per head) instead of the vector.
    """
    if q_loss:
        tq = (target * z).sum(-1)
        return sum(F_.mse_loss((p * z).sum(-1), tq) for p in psi)  # type: ignore[return-value]
    return sum(F_.mse_loss(p, target) for p in psi)  # type: ignore[return-value]
