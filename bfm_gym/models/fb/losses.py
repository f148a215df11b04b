"""Loss functions of FB and FB-AWARE, as pure functions of tensors
(docs/algorithms.md#fb-loss, #fb-actor, #fb-aware-aw)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = [
    "LowRank",
    "awr_actor_loss",
    "ensemble_aggregate",
    "fb_loss",
    "gaussian_log_prob",
    "ortho_loss",
    "td3_actor_loss",
]


class LowRank(NamedTuple):
    """A matrix ``M = left @ right^T`` kept as its two factors (never formed).

    ``M = F^T B`` has rank at most d (the latent size) but N x N entries (N = batch size);
    :func:`fb_loss` and :func:`ortho_loss` can read the sums of its squared entries from
    r x r Gram matrices instead (O(N r^2) work and memory instead of O(N^2 r)).

    Attributes:
        left: ``(..., N, r)``.
        right: ``(N, r)``.
    """

    left: torch.Tensor
    right: torch.Tensor


def ensemble_aggregate(x: torch.Tensor, pessimism: float) -> torch.Tensor:
    """``mean_k x_k - pessimism * unc`` with ``unc = sum_{k != l} |x_k - x_l| / (E^2 - E)``.

    metamotivo's ``get_targets_uncertainty``. For E = 2 and pessimism 0.5 this
    is ``min(x_1, x_2)``.

    Args:
        x: ``(E, ...)`` per-head values.
        pessimism: Penalty on the disagreement.

    Returns:
        ``(...)``.
    """
    mean = x.mean(0)
    e = x.shape[0]
    if pessimism == 0.0 or e == 1:
        return mean
    unc = (x.unsqueeze(0) - x.unsqueeze(1)).abs().sum((0, 1)) / (e * e - e)
    return mean - pessimism * unc


def _offdiag_sq_mean(d: torch.Tensor) -> torch.Tensor:
    """Mean of ``d[..., i, j]^2`` over i != j, summed over leading dimensions; d ``(..., N, N)``."""
    n = d.shape[-1]
    total = d.square().sum((-2, -1)) - torch.diagonal(d, dim1=-2, dim2=-1).square().sum(-1)
    return total.sum() / (n * n - n)


def fb_loss(
    m: torch.Tensor | LowRank, target_m: torch.Tensor | LowRank, discount: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Low-rank successor-measure TD loss (metamotivo scale, docs/algorithms.md#fb-loss).

    ``D_k = M_k - discount * target_M`` and
    ``L = sum_k [ 1/2 mean_{i != j} D_k[i, j]^2 - mean_i D_k[i, i] ]``.

    Args:
        m: ``(E, N, N)`` with ``M_k[i, j] = F_k(s_i, a_i, z_i)^T B(s'_j)``, or its factors
            ``LowRank(F (E, N, d), B (N, d))``.
        target_m: ``(N, N)`` aggregated target ``Ftarg(s'_i, a'_i, z_i)^T Btarg(s'_j)`` (no grad),
            or its factors ``LowRank(Ftarg (N, d), Btarg (N, d))`` (then ``m`` must be factored
            too).
        discount: ``(N, 1)`` ``gamma * (1 - terminated_i)``.

    Returns:
        ``(loss, diag_term, offdiag_term)``, scalars; ``loss = offdiag_term + diag_term``.
        The factored form gives the same values up to float rounding (tested against the
        dense form in float64) without forming any N x N matrix.
    """
    if isinstance(m, LowRank) or isinstance(target_m, LowRank):
        if not (isinstance(m, LowRank) and isinstance(target_m, LowRank)):
            raise TypeError("fb_loss: pass m and target_m both dense or both as LowRank factors")
        return _fb_loss_low_rank(m, target_m, discount)
    d = m - discount * target_m
    offdiag = 0.5 * _offdiag_sq_mean(d)
    diag = -torch.diagonal(d, dim1=-2, dim2=-1).mean(-1).sum()
    return offdiag + diag, diag, offdiag


def _fb_loss_low_rank(
    m: LowRank, target_m: LowRank, discount: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`fb_loss` from the factors: ``D_k = X_k Y^T`` with ``X_k = [F_k, -discount Ftarg]``
    and ``Y = [B, Btarg]`` (rank 2d), so ``sum_ij D_k[i, j]^2 = sum(X_k^T X_k * Y^T Y)`` and
    ``D_k[i, i] = X_k[i] . Y[i]``: O(N d^2) work instead of O(N^2 d)."""
    f, b = m
    u = discount * target_m.left  # (N, d)
    x = torch.cat([f, -u.expand(*f.shape[:-2], *u.shape)], dim=-1)  # (E, N, 2d)
    y = torch.cat([b, target_m.right], dim=-1)  # (N, 2d)
    n = y.shape[0]
    gram_x = x.transpose(-2, -1) @ x  # (E, 2d, 2d)
    gram_y = y.T @ y  # (2d, 2d)
    diag_d = (x * y).sum(-1)  # (E, N): D_k[i, i]
    total = (gram_x * gram_y).sum()  # sum_k ||D_k||_F^2
    offdiag = 0.5 * (total - diag_d.square().sum()) / (n * n - n)
    diag = -diag_d.mean(-1).sum()
    return offdiag + diag, diag, offdiag


def ortho_loss(
    b: torch.Tensor, *, low_rank: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Orthonormality regulariser ``1/2 mean_{i != j} C_ij^2 - mean_i C_ii`` with ``C = B B^T``.

    An unbiased surrogate of ``||E[B B^T] - I||_F^2`` up to constants (docs/algorithms.md#fb-orthonormality).

    Args:
        b: ``(N, d)``, or ``(G, N, d)`` for G groups (the mean over groups is returned).
        low_rank: Read ``||C||_F^2`` as ``||B^T B||_F^2`` (a d x d matrix) instead of forming
            the N x N matrix C; same value up to float rounding.

    Returns:
        ``(loss, diag_term, offdiag_term)``, scalars.
    """
    if low_rank:
        n = b.shape[-2]
        g = b.shape[0] if b.dim() == 3 else 1
        sq = b.square().sum(-1)  # (..., N): C_ii
        total = (b.transpose(-2, -1) @ b).square().sum()
        offdiag = 0.5 * (total - sq.square().sum()) / (n * n - n) / g
        diag = -sq.mean()
        return offdiag + diag, diag, offdiag
    c = b @ b.transpose(-2, -1)
    g = c.shape[0] if c.dim() == 3 else 1
    offdiag = 0.5 * _offdiag_sq_mean(c) / g
    diag = -torch.diagonal(c, dim1=-2, dim2=-1).mean()
    return offdiag + diag, diag, offdiag


def td3_actor_loss(qs: torch.Tensor, pessimism: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``L = -mean_i( mean_k Q_k - pessimism * unc(Q) )`` (docs/algorithms.md#fb-actor).

    Args:
        qs: ``(E, N)`` ``Q_k = F_k(s, a, z)^T z`` with ``a ~ pi(s, z)`` (reparameterised).
        pessimism: ``actor_pessimism``.

    Returns:
        ``(loss, q)``: scalar loss and the ``(N,)`` aggregated Q.
    """
    q = ensemble_aggregate(qs, pessimism)
    return -q.mean(), q


def gaussian_log_prob(action: torch.Tensor, mu: torch.Tensor, std: float) -> torch.Tensor:
    """``log N(action; mu, std^2 I)`` summed over action dimensions; ``(N, A) -> (N,)``."""
    a = action.shape[-1]
    return -0.5 * ((action - mu) / std).square().sum(-1) - a * (
        math.log(std) + 0.5 * math.log(2 * math.pi)
    )


def awr_actor_loss(
    log_prob: torch.Tensor, advantage: torch.Tensor, beta: float, weight_clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantage-weighted likelihood of dataset actions (FB-AWARE "AW", docs/algorithms.md#fb-aware-aw).

    ``w = N * softmax(A / (beta * std(A)))`` (self-normalised over the batch, mean 1), clipped
    at ``weight_clip``; ``L = -mean_i w_i log pi(a_i | s_i, z_i)``. Dividing A by its batch
    standard deviation makes beta unit-free: Q = F^T z changes scale with the task and over
    training. beta and the clip are our choices (UNVERIFIED in the paper).

    Args:
        log_prob: ``(N,)`` ``log pi(a_i | s_i, z_i)`` of dataset actions (with grad).
        advantage: ``(N,)`` ``Q(s, a_data, z) - Q(s, a_pi, z)`` (no grad).
        beta: Temperature.
        weight_clip: Upper clip of the weights.

    Returns:
        ``(loss, weights)``.
    """
    a = advantage.detach()
    a = a / (a.std() + 1e-6)
    w = (torch.softmax(a / beta, dim=0) * a.shape[0]).clamp(max=weight_clip)
    return -(w * log_prob).mean(), w
