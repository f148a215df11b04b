"""The FB model: B, F and pi plus the inference operations of the USF interface (docs/algorithms.md#successor-features).

:class:`FBModel` holds the networks only; training (targets, optimisers, losses) lives in
:mod:`bfm_gym.models.fb.agent`. Inference methods run under ``torch.no_grad`` unless called
with ``grad=True``, so a caller can differentiate through the frozen actor and F w.r.t. z
(ReLA's latent gradient ascent).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .._model import FamilyModel, grad_context
from .config import FBConfig
from .networks import (
    Actor,
    ARBackwardMap,
    BackwardMap,
    build_forward_map,
    project_sphere,
)

__all__ = ["FBModel"]


class FBModel(FamilyModel):
    """Forward-Backward representation ``M^{pi_z}(s, a, ds') ~ F(s, a, z)^T B(s') rho(ds')``.

    Args:
        config: Architecture (and training) settings.
        obs_dim: Observation size.
        action_dim: Action size; actions live in [-1, 1]^action_dim.

    Attributes:
        backward_map: B, a :class:`BackwardMap` or, when ``config.ar_blocks > 1``, an
            :class:`ARBackwardMap` (then ``B(s, z)``).
        forward_map: F, the E-head ensemble: ``(batch, ...) -> (E, batch, d)``.
        actor: pi's mean network.
        cov: ``(d, d)`` buffer, the uncentred second moment ``E_rho[B B^T]`` set by
            :meth:`finalize` (identity until then); ``phi = Cov^{-1} B``.
        cov_samples: ``()`` int64 buffer, number of states behind ``cov`` (0 = not finalized).

    Example:
        >>> model = FBModel(FBConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6)
        >>> obs = torch.zeros(5, 24)
        >>> z = model.sample_z(5, generator=torch.Generator().manual_seed(0))
        >>> model.act(obs, z).shape, model.forward(obs, model.act(obs, z), z).shape
        (torch.Size([5, 6]), torch.Size([2, 5, 8]))
    """

    _handle_class = "bfm_gym.models.fb.handle:FBHandle"
    cov: torch.Tensor
    cov_samples: torch.Tensor
    _device_buffer = "cov"

    def __init__(self, config: FBConfig, obs_dim: int, action_dim: int) -> None:
        super().__init__(config, obs_dim, action_dim)
        c = config
        self.backward_map: BackwardMap | ARBackwardMap
        if c.ar_blocks == 1:
            self.backward_map = BackwardMap(obs_dim, c.z_dim, c.b_hidden_dim, c.b_hidden_layers)
        else:
            self.backward_map = ARBackwardMap(
                obs_dim, c.block_sizes, c.b_hidden_dim, c.b_hidden_layers
            )
        self.forward_map = build_forward_map(
            c.ensemble_mode,
            obs_dim,
            action_dim,
            c.z_dim,
            c.f_hidden_dim,
            c.f_hidden_layers,
            c.f_embedding_layers,
            c.ensemble,
        )
        self.actor = Actor(
            obs_dim,
            c.z_dim,
            action_dim,
            c.actor_hidden_dim,
            c.actor_hidden_layers,
            c.actor_embedding_layers,
        )
        self.register_buffer("cov", torch.eye(c.z_dim))
        self.register_buffer("cov_samples", torch.zeros((), dtype=torch.int64))

    @property
    def is_autoregressive(self) -> bool:
        """True when B is the FB-AWARE auto-regressive B(s, z)."""
        return self.config.ar_blocks > 1

    # --- z ----------------------------------------------------------------------------------------
    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Put z on the latent sphere: ``proj(z) = sqrt(d) z / ||z||`` (docs/algorithms.md#notation).

        With an auto-regressive B each block k is projected on its own sphere of radius
        sqrt(d_k) (the concatenation still has norm sqrt(d)); see :class:`ARBackwardMap`.

        Args:
            z: ``(..., d)``.

        Returns:
            ``(..., d)``.
        """
        if not self.is_autoregressive:
            return project_sphere(z)
        return torch.cat(
            [project_sphere(block) for block in z.split(self.config.block_sizes, dim=-1)], dim=-1
        )

    # --- raw maps (no grad handling; used by training) -----------------------------------------
    def _backward(self, obs: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if not self.is_autoregressive:
            return self.backward_map(obs)
        if z is None:
            return self._goal_chain(obs)
        return self.backward_map(obs, z)  # type: ignore[call-arg]

    def _goal_chain(self, obs: torch.Tensor) -> torch.Tensor:
        """AR goal inference ``z^k = B^k(g, z^{1:k-1})`` block by block; ``(..., obs_dim) -> (..., d)``."""
        b = self.backward_map
        assert isinstance(b, ARBackwardMap)
        blocks: list[torch.Tensor] = []
        for k in range(len(b.blocks)):
            blocks.append(b.block(k, obs, torch.cat(blocks, dim=-1) if blocks else None))
        return torch.cat(blocks, dim=-1)

    # --- paper operations -----------------------------------------------------------------------
    def backward(
        self, obs: torch.Tensor, z: torch.Tensor | None = None, *, grad: bool = False
    ) -> torch.Tensor:  # type: ignore[override]
        """Backward embedding ``B(s)`` (``B(s, z)`` for an auto-regressive B).

        Args:
            obs: ``(batch, obs_dim)``.
            z: Auto-regressive B only: ``(batch, d)`` or ``(d,)`` conditioning latent. When None,
                each state is conditioned on its own goal latent (``B(g, z_g)`` with
                ``z_g = goal_z(g)``), so ``backward(g) == goal_z(g)``.
            grad: Track gradients.

        Returns:
            ``(batch, d)``, rows of norm sqrt(d).
        """
        with grad_context(grad):
            return self._backward(obs, z)

    def goal_z(self, goal_obs: torch.Tensor) -> torch.Tensor:
        """Goal inference ``z = proj(B(g))`` (block by block for an auto-regressive B).

        Args:
            goal_obs: ``(batch, obs_dim)``.

        Returns:
            ``(batch, d)``.
        """
        with torch.no_grad():
            return self.project(self._backward(goal_obs))

    def infer_z(
        self,
        next_obs: torch.Tensor,
        rewards: torch.Tensor,
        *,
        project: bool = True,
        chunk_size: int = 65536,
    ) -> torch.Tensor:
        """Zero-shot reward inference ``z_r = proj(mean_i r(s'_i) B(s'_i))``.

        The reward of a transition is paired with its **next** state (docs/algorithms.md#pitfall-next-state). With an
        auto-regressive B the fixed point ``z_r = E[r B(s, z_r)]`` is solved exactly block by
        block: ``z^k = proj_k(E[r B^k(s, z^{1:k-1})])``.

        Args:
            next_obs: ``(n, obs_dim)`` states s'_i.
            rewards: ``(n,)`` or ``(n, 1)`` rewards r(s'_i).
            project: Project the result (False returns the raw ``E[r B]``; for plain FB this is the
                least-squares weight of the reward on phi; for an auto-regressive B the later
                blocks are still conditioned on the projected earlier blocks).
            chunk_size: States per B evaluation (memory bound).

        Returns:
            ``(d,)``.
        """
        rewards = rewards.reshape(-1, 1).to(next_obs.dtype)
        n = next_obs.shape[0]
        with torch.no_grad():
            if not self.is_autoregressive:
                z = sum(
                    (r * self._backward(s)).sum(0)
                    for s, r in zip(
                        next_obs.split(chunk_size), rewards.split(chunk_size), strict=True
                    )
                )
                z = torch.as_tensor(z) / n
                return self.project(z) if project else z
            b = self.backward_map
            assert isinstance(b, ARBackwardMap)
            blocks: list[
                torch.Tensor
            ] = []  # projected blocks: later blocks are conditioned on these
            raw: list[torch.Tensor] = []
            for k in range(len(b.blocks)):
                prefix = torch.cat(blocks) if blocks else None
                acc = torch.zeros(b.block_sizes[k], device=next_obs.device)
                for s, r in zip(next_obs.split(chunk_size), rewards.split(chunk_size), strict=True):
                    p = None if prefix is None else prefix.expand(s.shape[0], -1)
                    acc = acc + (r * b.block(k, s, p)).sum(0)
                raw.append(acc / n)
                blocks.append(project_sphere(raw[-1]))
            return torch.cat(blocks if project else raw)

    # --- phi / psi (successor features view, docs/algorithms.md#successor-features) ---------------
    @torch.no_grad()
    def finalize(
        self,
        obs: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        chunk_size: int = 65536,
    ) -> torch.Tensor:
        """Compute and store ``cov = E_rho[B B^T]`` (uncentred) over dataset states.

        With an auto-regressive B the features depend on z; the stored cov then averages
        ``B(s, z) B(s, z)^T`` over states and latents ``z ~ proj(N(0, I))`` (one per state,
        drawn from ``generator``).

        Args:
            obs: ``(n, obs_dim)`` states from the training distribution (opti-bfm uses 50k).
            generator: RNG for the AR latents.
            chunk_size: States per B evaluation.

        Returns:
            ``(d, d)`` the new cov (also stored in the ``cov`` buffer).
        """
        acc = torch.zeros(self.z_dim, self.z_dim, dtype=torch.float64, device=obs.device)
        for s in obs.split(chunk_size):
            z = (
                self.sample_z(s.shape[0], generator=generator, device=s.device)
                if self.is_autoregressive
                else None
            )
            b = self._backward(s, z).double()
            acc += b.T @ b
        cov = (acc / obs.shape[0]).to(self.cov.dtype)
        self.cov.copy_(cov)
        self.cov_samples.fill_(obs.shape[0])
        return cov

    def phi(
        self, obs: torch.Tensor, z: torch.Tensor | None = None, *, ridge: float = 1e-6
    ) -> torch.Tensor:
        """State features ``phi(s) = Cov(B)^{-1} B(s)`` (docs/algorithms.md#pitfall-phi-vs-b), via a ridge solve.

        Args:
            obs: ``(batch, obs_dim)``.
            z: Conditioning latent for an auto-regressive B (see :meth:`backward`).
            ridge: Relative ridge: ``Cov + ridge * trace(Cov)/d * I`` is solved (float64).

        Returns:
            ``(batch, d)``.
        """
        with torch.no_grad():
            b = self._backward(obs, z)
            cov = self.cov.double()
            reg = cov + ridge * torch.trace(cov) / self.z_dim * torch.eye(
                self.z_dim, dtype=cov.dtype, device=cov.device
            )
            return torch.linalg.solve(reg, b.double().T).T.to(b.dtype)

    # --- misc -----------------------------------------------------------------------------------
    def networks(self) -> Iterator[tuple[str, nn.Module]]:
        """``("B", B), ("F", F), ("pi", pi)``."""
        yield from (("B", self.backward_map), ("F", self.forward_map), ("pi", self.actor))
