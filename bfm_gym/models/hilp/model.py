"""The HILP model: Hilbert representation phi, successor features psi and the policy pi.

Hilbert foundation policies (Park, Kreiman, Levine, ICML 2024). phi embeds states in a space
where the goal-conditioned value is a distance, ``V(s, g) = -||phi(s) - phi(g)||``. Rewards are
modelled as linear in the **centred** features ``phi~(s) = phi(s) - mean(phi)`` (the running
mean over training batches), psi(s, a, z) are the successor features of phi~ under ``pi_z``,
and pi(s, z) maximises ``psi^T z``. Zero-shot inference is the least-squares regression of
rewards on phi~, projected on the sphere (not FB's ``E[r B]``: phi is not whitened); a goal g
reached from s gets ``z = proj(phi(g) - phi(s))``.

:class:`HILPModel` holds the networks; training (targets, optimisers, losses) lives in
:mod:`bfm_gym.models.hilp.trainer`. Inference methods run under ``torch.no_grad`` unless called
with ``grad=True``.
"""

from __future__ import annotations

import torch

from .._model import FamilyModel, grad_context
from .config import HILPConfig
from .networks import Actor, ForwardMap, PhiNet

__all__ = ["HILPModel"]


class HILPModel(FamilyModel):
    """phi_1, phi_2, psi (E heads) and pi, plus the running feature mean.

    Args:
        config: Architecture and training settings.
        obs_dim: Observation size.
        action_dim: Action size; actions in [-1, 1].

    Example:
        >>> model = HILPModel(HILPConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6)
        >>> obs = torch.zeros(5, 24)
        >>> z = model.sample_z(5, generator=torch.Generator().manual_seed(0))
        >>> model.act(obs, z).shape, model.psi(obs, z).shape
        (torch.Size([5, 6]), torch.Size([2, 5, 8]))
    """

    _handle_class = "bfm_gym.models.hilp.handle:HILPHandle"
    phi_mean: torch.Tensor
    _device_buffer = "phi_mean"

    def __init__(self, config: HILPConfig, obs_dim: int, action_dim: int) -> None:
        super().__init__(config, obs_dim, action_dim)
        c = config
        self.phi1 = PhiNet(obs_dim, c.z_dim, c.phi_hidden_dim, c.phi_hidden_layers)
        self.phi2 = PhiNet(obs_dim, c.z_dim, c.phi_hidden_dim, c.phi_hidden_layers)
        self.successor = ForwardMap(obs_dim, action_dim, c.z_dim, c.sf_hidden_dim,
                                    c.sf_hidden_layers, c.sf_embedding_layers, c.ensemble)
        self.actor = Actor(obs_dim, c.z_dim, action_dim, c.actor_hidden_dim,
                           c.actor_hidden_layers, c.actor_embedding_layers)
        self.register_buffer("phi_mean", torch.zeros(c.z_dim))

    @property
    def forward_map(self) -> ForwardMap:
        """psi's network under FB's name ``F`` (code written for FB's internals, such as the SB3
        plugin's critic initialisation, reads it); the same module as :attr:`successor`."""
        return self.successor

    # --- phi --------------------------------------------------------------------------------------
    def raw_phi(self, obs: torch.Tensor, *, grad: bool = False) -> torch.Tensor:
        """Uncentred ``phi_1(s)``: ``(batch, d)``."""
        with grad_context(grad):
            return self.phi1(obs)

    def phi(self, obs: torch.Tensor, *, grad: bool = False) -> torch.Tensor:
        """Reward features ``phi~(s) = phi_1(s) - mean(phi)``: ``(batch, d)``."""
        with grad_context(grad):
            return self.phi1(obs) - self.phi_mean

    def value(self, obs: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Goal-conditioned values ``V_k(s, g) = -||phi_k(s) - phi_k(g)||``: ``(2, batch)``."""
        with torch.no_grad():
            return torch.stack([-torch.linalg.vector_norm(net(obs) - net(goal), dim=-1)
                                for net in (self.phi1, self.phi2)])

    # --- inference --------------------------------------------------------------------------------
    def infer_z(self, next_obs: torch.Tensor, rewards: torch.Tensor, *, project: bool = True,
                chunk_size: int = 65536) -> torch.Tensor:
        """Least-squares weights ``w = argmin ||phi~(S') w - r||`` (float64), projected or not.

        Args:
            next_obs: ``(n, obs_dim)`` next states.
            rewards: ``(n,)`` rewards on them.
            project: ``proj(w)`` (the zero-shot latent) or the raw weights (``phi~^T w ~ r``).
            chunk_size: States per phi evaluation.

        Returns:
            ``(d,)``.
        """
        with torch.no_grad():
            feats = torch.cat([self.phi(s) for s in next_obs.split(chunk_size)]).double().cpu()
            r = rewards.reshape(-1, 1).double().cpu()
            w = torch.linalg.lstsq(feats, r, driver="gelsd").solution.reshape(-1)
            w = w.to(device=next_obs.device, dtype=torch.float32)
            return self.project(w) if project else w

    def goal_z(self, goal_obs: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        """``proj(phi(g) - phi(s))`` (``proj(phi~(g))``, the goal from the mean state, without
        ``obs``): ``(batch, d)``."""
        with torch.no_grad():
            target = self.phi(goal_obs)
            if obs is not None:
                target = target - self.phi(obs)
            return self.project(target)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, hilp_gamma={self.config.hilp_gamma}"
