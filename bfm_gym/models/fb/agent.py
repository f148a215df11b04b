"""One FB / FB-AWARE gradient update: targets, optimisers, z sampling and the losses.

The update reads like the paper (docs/algorithms.md#fb, #fb-aware):

1. z: ``proj(N(0, I))``, and with prob. ``train_goal_ratio`` ``proj(B(g))`` for a shuffled
   next observation g of the batch.
2. FB: ``M_k = F_k(s, a, z)^T B(s')``, target ``Ftarg(s', a', z)^T Btarg(s')`` with
   ``a' ~ pi(s', z)``, TD loss + orthonormality loss on B; one Adam step on F and B.
3. pi: TD3 (``-(mean_k Q_k - 0.5 unc)``) or AWR (advantage-weighted likelihood of the dataset
   actions); one Adam step on pi.
4. Polyak update of the F and B targets (not the actor).

All randomness is drawn up front from a caller's generator (:func:`draw_noise`), so the loss
computation is a pure function of its inputs: bit-reproducible and ``torch.compile``-friendly.
"""

from __future__ import annotations

import copy
import logging
from typing import NamedTuple

import torch
from torch import nn

from .config import FBConfig
from .losses import (
    LowRank,
    awr_actor_loss,
    ensemble_aggregate,
    fb_loss,
    gaussian_log_prob,
    ortho_loss,
    td3_actor_loss,
)
from .model import FBModel
from .networks import sample_action
from .replay import TransitionBatch
from ..runtime import autocast_context, make_adam, resolve_amp

__all__ = ["FBAgent", "UpdateNoise", "draw_noise", "make_adam"]

logger = logging.getLogger(__name__)


class UpdateNoise(NamedTuple):
    """Random draws of one update (G = number of distinct z: batch size, or ar_z_groups).

    Attributes:
        z: ``(G, d)`` standard normal, projected into training latents.
        goal_mask: ``(G, 1)`` uniform [0, 1); ``< train_goal_ratio`` selects a goal latent.
        goal_index: ``(G,)`` batch rows whose next observation is the goal (a shuffle).
        next_action: ``(N, action_dim)`` standard normal, the target action noise.
        actor_action: ``(N, action_dim)`` standard normal, the actor-loss action noise.
    """

    z: torch.Tensor
    goal_mask: torch.Tensor
    goal_index: torch.Tensor
    next_action: torch.Tensor
    actor_action: torch.Tensor


def draw_noise(
    config: FBConfig, action_dim: int, generator: torch.Generator, device: torch.device
) -> UpdateNoise:
    """Draw every random number one update needs, in a fixed order, from ``generator``."""
    n = config.batch_size
    g = config.ar_z_groups if config.ar_blocks > 1 else n
    return UpdateNoise(
        z=torch.randn(g, config.z_dim, generator=generator, device=device),
        goal_mask=torch.rand(g, 1, generator=generator, device=device),
        goal_index=torch.randperm(n, generator=generator, device=device)[:g],
        next_action=torch.randn(n, action_dim, generator=generator, device=device),
        actor_action=torch.randn(n, action_dim, generator=generator, device=device),
    )


class FBAgent:
    """Owns an :class:`FBModel` in training mode, its F/B targets and its optimisers.

    Args:
        model: The model to train (modified in place).
        device: Its device.

    Attributes:
        model: The online networks.
        target_forward_map: Polyak copy of F.
        target_backward_map: Polyak copy of B.
        fb_optimizer: Adam over F (lr_f) and B (lr_b), two parameter groups.
        actor_optimizer: Adam over pi (lr_actor).
        amp_dtype: Autocast dtype (None = fp32).
    """

    def __init__(self, model: FBModel, device: torch.device) -> None:
        self.model = model
        self.config: FBConfig = model.config
        self.device = device
        c = self.config
        model.train(True).requires_grad_(True)
        # targets are copied after the weights are initialised (docs/algorithms.md#pitfall-targets)
        self.target_forward_map: nn.Module = copy.deepcopy(model.forward_map).requires_grad_(False)
        self.target_backward_map: nn.Module = copy.deepcopy(model.backward_map).requires_grad_(
            False
        )
        self.fb_optimizer = make_adam(
            [{"params": list(model.forward_map.parameters()), "lr": c.lr_f},
             {"params": list(model.backward_map.parameters()), "lr": c.lr_b}],
            device, c.fused_adam,
        )  # fmt: skip
        self.actor_optimizer = make_adam(
            [{"params": list(model.actor.parameters()), "lr": c.lr_actor}], device, c.fused_adam
        )
        self._online = [p for m in (model.forward_map, model.backward_map) for p in m.parameters()]
        self._target = [
            p for m in (self.target_forward_map, self.target_backward_map) for p in m.parameters()
        ]
        self.amp_dtype = resolve_amp(c.amp, device)
        # plain B and a plain-mean target: M = F^T B is read through its factors (no N x N matrix)
        self.factored_loss = not model.is_autoregressive and c.fb_pessimism == 0.0
        fb_losses = self._fb_losses_factored if self.factored_loss else self._fb_losses_eager
        self._fb_losses = fb_losses
        self._actor_losses = self._actor_losses_eager
        if c.compile:
            self._fb_losses = torch.compile(fb_losses, dynamic=False)
            self._actor_losses = torch.compile(self._actor_losses_eager, dynamic=False)

    # --- state ----------------------------------------------------------------------------------
    def target_state_dict(self) -> dict[str, torch.Tensor]:
        """Target weights under ``target_forward_map.*`` / ``target_backward_map.*``."""
        out = {
            f"target_forward_map.{k}": v for k, v in self.target_forward_map.state_dict().items()
        }
        out.update(
            {
                f"target_backward_map.{k}": v
                for k, v in self.target_backward_map.state_dict().items()
            }
        )
        return out

    def load_target_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`target_state_dict`."""
        for prefix, module in (
            ("target_forward_map.", self.target_forward_map),
            ("target_backward_map.", self.target_backward_map),
        ):
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )

    # --- z sampling (docs/algorithms.md#fb-z-sampling) ------------------------------------------
    @torch.no_grad()
    def mixed_z(self, next_obs: torch.Tensor, noise: UpdateNoise,
                b_next: torch.Tensor | None = None) -> torch.Tensor:
        """Training latents: ``proj(N(0, I))`` or, with prob. train_goal_ratio, ``proj(B(g))``.

        Args:
            b_next: ``B(next_obs)`` when the caller already has it (the factored loss): the goal
                rows are taken from it instead of a second pass of B.

        Returns:
            ``(G, d)``: one per row (plain FB) or one per group (auto-regressive B).
        """
        z = self.model.project(noise.z)
        b_goal = (self.model._backward(next_obs[noise.goal_index]) if b_next is None
                  else b_next[noise.goal_index].float())  # the rows in fp32 under bf16 autocast
        goal = self.model.project(b_goal)
        return torch.where(noise.goal_mask < self.config.train_goal_ratio, goal, z)

    # --- losses ---------------------------------------------------------------------------------
    def _pairwise_m(self, f: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``M[..., i, j] = f[..., i] . b_{g(i)}[j]``.

        Args:
            f: ``(..., N, d)`` forward embeddings.
            b: ``(N, d)`` backward embeddings, or ``(G, N, d)`` when row group g(i) has its own B.

        Returns:
            ``(..., N, N)``.
        """
        if b.dim() == 2:
            return f @ b.T
        g, n = b.shape[0], b.shape[1]
        fg = f.reshape(*f.shape[:-2], g, n // g, f.shape[-1])
        return (fg @ b.transpose(-2, -1)).reshape(*f.shape[:-2], n, n)

    def _backward_pairs(
        self, backward_map: nn.Module, next_obs: torch.Tensor, z_groups: torch.Tensor
    ) -> torch.Tensor:
        """B(s'_j) ``(N, d)``, or for an auto-regressive B, B(s'_j, z_g) for every group: ``(G, N, d)``."""
        if not self.model.is_autoregressive:
            return backward_map(next_obs)
        g, n = z_groups.shape[0], next_obs.shape[0]
        return backward_map(
            next_obs.unsqueeze(0).expand(g, n, -1), z_groups.unsqueeze(1).expand(g, n, -1)
        )

    def _fb_losses_eager(
        self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, discount: torch.Tensor,
        z_groups: torch.Tensor, next_noise: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        c, model = self.config, self.model
        n = obs.shape[0]
        z = (
            z_groups
            if z_groups.shape[0] == n
            else z_groups.repeat_interleave(n // z_groups.shape[0], dim=0)
        )
        with autocast_context(self.device, self.amp_dtype):
            with torch.no_grad():
                next_action = sample_action(
                    model.actor(next_obs, z), c.actor_std, c.stddev_clip, next_noise
                )
                target_f = self.target_forward_map(next_obs, next_action, z)  # (E, N, d)
                target_b = self._backward_pairs(
                    self.target_backward_map, next_obs, z_groups
                )  # (N, d) | (G, N, d)
                if (
                    c.fb_pessimism == 0.0
                ):  # mean_k(F_k)^T B == mean_k(F_k^T B): one matmul instead of E
                    target_m = self._pairwise_m(target_f.mean(0), target_b).float()
                else:
                    target_m = ensemble_aggregate(
                        self._pairwise_m(target_f, target_b).float(), c.fb_pessimism
                    )
            f = model.forward_map(obs, action, z)  # (E, N, d)
            b = self._backward_pairs(model.backward_map, next_obs, z_groups)
            m = self._pairwise_m(f, b).float()  # (E, N, N)
        loss_fb, fb_diag, fb_offdiag = fb_loss(m, target_m, discount)
        loss_ortho, ortho_diag, ortho_offdiag = ortho_loss(b.float())
        loss = loss_fb + c.ortho_coef * loss_ortho
        metrics = {
            "fb_loss": loss_fb.detach(), "fb_diag": fb_diag.detach(), "fb_offdiag": fb_offdiag.detach(),
            "ortho_loss": loss_ortho.detach(), "ortho_diag": ortho_diag.detach(), "ortho_offdiag": ortho_offdiag.detach(),
            "m_diag": torch.diagonal(m, dim1=-2, dim2=-1).mean().detach(), "target_m": target_m.mean(),
        }  # fmt: skip
        return loss, f.detach(), metrics

    def _fb_losses_factored(
        self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, discount: torch.Tensor,
        noise: UpdateNoise,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:  # fmt: skip
        """:meth:`mixed_z` and :meth:`_fb_losses_eager` for a plain B and ``fb_pessimism == 0``,
        without any N x N matrix and with one pass of B over the next observations.

        * The losses take ``M = F^T B`` and its target as :class:`~.losses.LowRank` factors, in
          fp32 (the dense path rounds M to the autocast dtype first).
        * The goal latents ``proj(B(g))`` are rows of the online ``B(s')`` the loss uses (same
          weights: nothing has stepped yet), not a second pass of B; under bf16 autocast they
          are therefore computed in bf16 (the dense path runs that pass in fp32).

        In fp32 both paths agree to float rounding (tests/models/test_fb_speed_factored.py).

        Returns:
            ``(loss, F(s, a, z) detached, metrics, z (N, d))``.
        """
        c, model = self.config, self.model
        with autocast_context(self.device, self.amp_dtype):
            b = model.backward_map(next_obs)  # (N, d)
            with torch.no_grad():
                z = self.mixed_z(next_obs, noise, b_next=b.detach())
                next_action = sample_action(
                    model.actor(next_obs, z), c.actor_std, c.stddev_clip, noise.next_action
                )
                target_f = self.target_forward_map(next_obs, next_action, z)  # (E, N, d)
                target_b = self.target_backward_map(next_obs)  # (N, d)
            f = model.forward_map(obs, action, z)  # (E, N, d)
        f32, b32 = f.float(), b.float()
        # mean_k(F_k)^T B == mean_k(F_k^T B): the target is one factor pair
        t, bt = target_f.float().mean(0), target_b.float()
        loss_fb, fb_diag, fb_offdiag = fb_loss(LowRank(f32, b32), LowRank(t, bt), discount)
        loss_ortho, ortho_diag, ortho_offdiag = ortho_loss(b32, low_rank=True)
        loss = loss_fb + c.ortho_coef * loss_ortho
        with torch.no_grad():
            m_diag = (f32 * b32).sum(-1).mean()
            target_m = t.mean(0) @ bt.mean(0)  # mean_ij t_i . bt_j
        metrics = {
            "fb_loss": loss_fb.detach(), "fb_diag": fb_diag.detach(), "fb_offdiag": fb_offdiag.detach(),
            "ortho_loss": loss_ortho.detach(), "ortho_diag": ortho_diag.detach(), "ortho_offdiag": ortho_offdiag.detach(),
            "m_diag": m_diag, "target_m": target_m,
        }  # fmt: skip
        return loss, f.detach(), metrics, z

    def _frozen_forward_map(
        self, obs: torch.Tensor, action: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        """F with detached weights: the actor loss differentiates w.r.t. the action only.

        (``backward(inputs=...)`` would prune F's weight gradients in eager mode, but not inside
        a ``torch.compile``d backward graph; detached weights work in both.)
        """
        params = {k: v.detach() for k, v in self.model.forward_map.named_parameters()}
        return torch.func.functional_call(self.model.forward_map, params, (obs, action, z))

    def _actor_losses_eager(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        z: torch.Tensor,
        f_data: torch.Tensor,
        actor_noise: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c, model = self.config, self.model
        with autocast_context(self.device, self.amp_dtype):
            mu = model.actor(obs, z)
            if c.actor_loss == "td3":
                pi_action = sample_action(mu, c.actor_std, c.stddev_clip, actor_noise)
                qs = (self._frozen_forward_map(obs, pi_action, z).float() * z).sum(-1)  # (E, N)
                loss, q = td3_actor_loss(qs, c.actor_pessimism)
                if c.actor_bc > 0:
                    bc = (mu.float() - action).square().mean()
                    loss = loss / q.abs().mean().detach().clamp_min(1e-6) + c.actor_bc * bc
                    return loss, {"actor_loss": loss.detach(), "q": q.mean().detach(), "actor_bc_mse": bc.detach()}
                return loss, {"actor_loss": loss.detach(), "q": q.mean().detach()}
            # AWR (docs/algorithms.md#fb-aware-aw): A = Q(s, a_data, z) - Q(s, a_pi, z), Q = ensemble mean of F^T z.
            # Q(s, a_data, z) reuses F(s, a, z) from the FB step (pre-update F, no extra pass).
            with torch.no_grad():
                pi_action = sample_action(mu.detach(), c.actor_std, c.stddev_clip, actor_noise)
                q_pi = (model.forward_map(obs, pi_action, z).float() * z).sum(-1).mean(0)
                q_data = (f_data.float() * z).sum(-1).mean(0)
            log_prob = gaussian_log_prob(action, mu.float(), c.actor_std)
            loss, w = awr_actor_loss(log_prob, q_data - q_pi, c.awr_beta, c.awr_weight_clip)
            return loss, {"actor_loss": loss.detach(), "q": q_pi.mean(), "awr_weight_max": w.max()}

    # --- update ---------------------------------------------------------------------------------
    def update(self, batch: TransitionBatch, noise: UpdateNoise) -> dict[str, torch.Tensor]:
        """One gradient step on F, B and pi, then the Polyak target update.

        Args:
            batch: Transitions on the agent's device.
            noise: This step's random draws (:func:`draw_noise`).

        Returns:
            Detached scalar tensors (no host sync): fb_loss, fb_diag, fb_offdiag, ortho_loss,
            ortho_diag, ortho_offdiag, m_diag, target_m, actor_loss, q (AWR adds awr_weight_max).
        """
        c = self.config
        obs, action, next_obs = batch.obs, batch.action, batch.next_obs
        discount = c.gamma * (1.0 - batch.terminated)  # (N, 1); truncation is not terminal
        if self.factored_loss:
            loss, f_data, metrics, z = self._fb_losses(obs, action, next_obs, discount, noise)
        else:
            z_groups = self.mixed_z(next_obs, noise)
            loss, f_data, metrics = self._fb_losses(
                obs, action, next_obs, discount, z_groups, noise.next_action
            )
            z = (
                z_groups
                if z_groups.shape[0] == obs.shape[0]
                else z_groups.repeat_interleave(obs.shape[0] // z_groups.shape[0], dim=0)
            )
        self.fb_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.fb_optimizer.step()

        actor_loss, actor_metrics = self._actor_losses(obs, action, z, f_data, noise.actor_action)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()

        with torch.no_grad():
            torch._foreach_lerp_(self._target, self._online, c.tau)
        metrics.update(actor_metrics)
        return metrics
