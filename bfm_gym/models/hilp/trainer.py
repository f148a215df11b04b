"""Offline HILP training: one update of phi, psi and pi per batch; the loop, logging,
evaluation, checkpoints and exact resume are :class:`~bfm_gym.models._trainer.FamilyTrainer`'s.

One update (the official ``SFAgent.update`` with the ``hilp`` feature learner):

1. z: uniform on the sphere of radius sqrt(d); a ``mix_ratio`` fraction replaced by
   ``proj(Cov^+ phi~(s'_perm))`` (features of shuffled dataset next states, whitened by the
   batch's uncentred feature covariance).
2. psi: TD target ``phi~(s') + gamma (1 - terminated) psi'_j(s', a', z)`` with the target head
   j of lower ``psi'^T z``, ``a' ~ pi(s', z)`` with clipped noise; MSE on every head.
3. phi: the expectile value loss on goals from the trajectory's future (or random states).
   phi gets no gradient from psi or pi (the TD target uses detached features).
4. pi: TD3 loss ``-min_k psi_k(s, a, z)^T z`` with ``a ~ pi(s, z)`` (clipped noise).
5. Polyak: phi targets at ``phi_tau``, psi target at ``sf_tau``; the feature mean moves by
   ``mean_rate`` towards the batch mean of phi_1(s).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> obs = rng.normal(size=(256, 3)).astype("float32")
    >>> act = rng.uniform(-1, 1, size=(256, 2)).astype("float32")
    >>> replay = GoalReplay(obs, act, obs + 0.1 * np.pad(act, ((0, 0), (0, 1))), episode=np.arange(256) // 64)
    >>> trainer = HILPTrainer(HILPConfig.preset("point_mass_maze", "tiny"), 3, 2, device="cpu", threads=None)
    >>> [int(row["step"]) for row in trainer.train(replay, 4, log_every=2, progress=False)]
    [2, 4]
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from typing import Any

import torch

from bfm_gym.models._trainer import FamilyTrainer, load_module_tensors, module_tensors
from bfm_gym.models.ops import sample_action
from bfm_gym.models.runtime import autocast_context, make_adam, resolve_amp

from .config import HILPConfig
from .handle import HILPHandle
from .losses import hilbert_value_loss, sf_loss, td3_actor_loss
from .model import HILPModel
from .replay import GoalBatch, GoalReplay

__all__ = ["HILPTrainer"]

class HILPTrainer(FamilyTrainer):
    """Trains a :class:`HILPModel` on offline transitions with episode boundaries (a
    :class:`GoalReplay`; arguments: :class:`FamilyTrainer`).

    Attributes:
        model: The online model. step: Updates done.
    """

    TRAINER_FORMAT = "bfm_gym.hilp.trainer"
    _bar_metrics = (("sf", "sf_loss"), ("phi", "phi_loss"))
    _handle_class = HILPHandle
    config_class = HILPConfig
    config: HILPConfig

    @classmethod
    def replay_from(cls, transitions: Any) -> GoalReplay:
        """The dataset's transitions with their episode indices: HILP samples goals from the
        same episode's future."""
        t = transitions
        return GoalReplay(t.obs, t.action, t.next_obs, t.terminated, t.episode)

    def _setup(self, model: HILPModel, seeds: list[int]) -> None:
        config = self.config
        self.model = model.train(True)
        self.target_phi = (copy.deepcopy(model.phi1).requires_grad_(False),
                           copy.deepcopy(model.phi2).requires_grad_(False))
        self.target_successor = copy.deepcopy(model.successor).requires_grad_(False)
        fused = config.fused_adam
        self.phi_optimizer = make_adam(
            [{"params": [*model.phi1.parameters(), *model.phi2.parameters()], "lr": config.lr_phi}],
            self.device, fused)
        self.sf_optimizer = make_adam([{"params": list(model.successor.parameters()), "lr": config.lr_sf}],
                                      self.device, fused)
        self.actor_optimizer = make_adam([{"params": list(model.actor.parameters()), "lr": config.lr_actor}],
                                         self.device, fused)
        self.amp_dtype = resolve_amp(config.amp, self.device)
        self._polyak = (
            (list(self.target_phi[0].parameters()) + list(self.target_phi[1].parameters()),
             list(model.phi1.parameters()) + list(model.phi2.parameters()), config.phi_tau),
            (list(self.target_successor.parameters()), list(model.successor.parameters()), config.sf_tau),
        )

    # --- one update ------------------------------------------------------------------------------
    def sample(self, replay: GoalReplay) -> GoalBatch:
        """A batch with goals, drawn with the trainer's sampling generator."""
        c = self.config
        return replay.sample_goals(c.batch_size, self.sample_generator, future=c.future,
                                   p_random_goal=c.p_random_goal)

    def _latents(self, phi_next: torch.Tensor) -> torch.Tensor:
        """Training z: uniform on the sphere, a ``mix_ratio`` share replaced by
        ``proj(Cov^+ phi(s'))`` of shuffled next states (``phi_next``: phi(s') of the batch, fp32)."""
        c, m, g = self.config, self.model, self.noise_generator
        n = phi_next.shape[0]
        z = m.sample_z(n, generator=g)
        if c.mix_ratio > 0:
            perm = torch.randperm(n, generator=g, device=self.device)
            with torch.no_grad():
                phi = phi_next[perm]  # the covariance and its pseudo-inverse in fp32
                inv_cov = torch.linalg.pinv(phi.T @ phi / n)
                mixed = m.project(phi @ inv_cov)
            use = torch.rand(n, generator=g, device=self.device) < c.mix_ratio
            z = torch.where(use[:, None], mixed, z)
        return z

    def update(self, batch: GoalBatch) -> dict[str, torch.Tensor]:
        """One update of phi, psi and pi on ``batch``; returns detached scalar metrics."""
        c, m, g = self.config, self.model, self.noise_generator
        self._check_batch(batch.obs.shape[0])
        obs, action, next_obs, goal = batch.obs, batch.action, batch.next_obs, batch.goal
        with torch.no_grad(), self._autocast():
            # phi(s') once for the mixed latents and the successor-feature target (phi is
            # row-wise: a shuffled batch's features are the shuffled features, bit for bit)
            phi_next = m.phi(next_obs).float()
        z = self._latents(phi_next)
        # successor features (networks under autocast, their outputs and the losses in fp32)
        with torch.no_grad(), self._autocast():
            eps = torch.randn(action.shape, generator=g, device=self.device)
            next_action = sample_action(m.actor(next_obs, z), c.actor_std, c.stddev_clip, eps)
            next_psi = self.target_successor(next_obs, next_action, z).float()  # (E, B, d)
            best = (next_psi * z).sum(-1).argmin(0)  # head of lower Q per row
            next_psi = next_psi.gather(0, best.view(1, -1, 1).expand(1, -1, c.z_dim))[0]
            target = phi_next + c.gamma * (1.0 - batch.terminated) * next_psi
        with self._autocast():
            psi = m.successor(obs, action, z)
        loss_sf = sf_loss(psi.float(), target, z, c.q_loss)
        # Hilbert representation
        with self._autocast():
            loss_v, info = hilbert_value_loss((m.phi1, m.phi2), self.target_phi, obs, next_obs, goal,
                                              c.hilp_gamma, c.expectile)
        batch_mean = info["phi1_obs_mean"]  # phi_1(s) before this step's update
        self.sf_optimizer.zero_grad(set_to_none=True)
        self.phi_optimizer.zero_grad(set_to_none=True)
        (loss_sf + loss_v).backward()  # disjoint parameters: one backward for both
        self.sf_optimizer.step()
        self.phi_optimizer.step()
        # actor
        eps = torch.randn(action.shape, generator=g, device=self.device)
        with self._autocast():
            a = sample_action(m.actor(obs, z), c.actor_std, c.stddev_clip, eps)
            psi_pi = m.successor(obs, a, z)
        qs = (psi_pi.float() * z).sum(-1)
        loss_actor, _q = td3_actor_loss(qs, c.actor_pessimism)
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss_actor.backward()
        self.actor_optimizer.step()
        with torch.no_grad():
            for targets, online, tau in self._polyak:
                torch._foreach_lerp_(targets, online, tau)
            m.phi_mean.lerp_(batch_mean, c.mean_rate)
        self.step += 1
        return {"sf_loss": loss_sf.detach(), "phi_loss": loss_v.detach(),
                "actor_loss": loss_actor.detach(), "v_mean": info["v_mean"],
                "adv_mean": info["adv_mean"]}

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        return autocast_context(self.device, self.amp_dtype)

    # --- what a checkpoint holds besides the model ------------------------------------------------
    def _check_replay(self, replay: Any) -> None:
        if not isinstance(replay, GoalReplay):
            raise TypeError("HILPTrainer.train needs a GoalReplay (transitions with their episode "
                            f"index, for goal sampling); got {type(replay).__name__}")

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"phi_optimizer": self.phi_optimizer, "sf_optimizer": self.sf_optimizer,
                "actor_optimizer": self.actor_optimizer}

    def _targets(self) -> dict[str, torch.nn.Module]:
        return {"target_phi1": self.target_phi[0], "target_phi2": self.target_phi[1],
                "target_successor": self.target_successor}

    def _target_tensors(self) -> dict[str, torch.Tensor]:
        return module_tensors(self._targets())

    def _load_target_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        load_module_tensors(self._targets(), tensors)

    def _after_resume(self) -> None:
        self.model.requires_grad_(True).train(True)
