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


def _dist_value(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``-||x - g||`` with the squared norm clamped at 1e-6 (a finite gradient at x = g)."""
    return -torch.sqrt(torch.clamp((x - g).pow(2).sum(-1), min=1e-6))


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
    V'_k(s, g)``, as in IQL. Each network runs once on the stacked states; the distances and
    the loss are computed in fp32 (the networks may run under bf16 autocast).

    Returns:
        ``(loss, metrics)``; ``metrics["phi1_obs_mean"]`` is the batch mean of the online
        ``phi_1(s)`` (for the running feature mean, without another forward pass).
    """
    n = obs.shape[0]
    with torch.no_grad():
        success = (torch.linalg.vector_norm(obs - goal, dim=-1) < 1e-6).float()
        reward, mask = success - 1.0, 1.0 - success
        stacked = torch.cat([next_obs, obs, goal])
        nv, v_t = [], []
        for net in target:
            ns, s, g = net(stacked).float().split(n)
            nv.append(_dist_value(ns, g))
            v_t.append(_dist_value(s, g))
        q = reward + gamma * mask * torch.minimum(nv[0], nv[1])
        adv = q - 0.5 * (v_t[0] + v_t[1])
    pair = torch.cat([obs, goal])
    loss = obs.new_zeros(())
    values = []
    phi1_obs = None
    for k, net in enumerate(online):
        s, g = net(pair).float().split(n)
        phi1_obs = s if phi1_obs is None else phi1_obs
        v = _dist_value(s, g)
        values.append(v.detach())
        loss = loss + expectile_loss(adv, reward + gamma * mask * nv[k] - v, expectile)
    assert phi1_obs is not None
    v_mean = 0.5 * (values[0] + values[1])
    return loss, {"value_loss": loss.detach(), "v_mean": v_mean.mean(), "adv_mean": adv.mean(),
                  "phi1_obs_mean": phi1_obs.detach().mean(0)}


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
