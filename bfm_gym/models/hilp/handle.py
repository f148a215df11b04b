"""``HILPHandle``: the frozen handle on a trained HILP model (the :class:`~bfm_gym.models.protocol.BFM`
protocol). The array boundary and the shared operations are
:class:`~bfm_gym.models._handle.FamilyHandle`'s; this module adds HILP's centred features
``phi~``, goal-conditioned values, least-squares inference's sample count and goal latents
``proj(phi(g) - phi(s))``."""

from __future__ import annotations

from typing import Any

from bfm_gym.models._handle import Array, FamilyHandle

from .checkpoint import FOLDER
from .model import HILPModel

__all__ = ["HILPHandle"]


class HILPHandle(FamilyHandle):
    """A frozen HILP model: ``pi``, ``phi~`` (centred Hilbert features), ``psi``, inference.

    Args:
        model: The trained model; put in eval mode and frozen.
        metadata: Domain, dataset, spaces bounds and training steps.

    Example:
        >>> import numpy as np
        >>> from bfm_gym.models.hilp import HILPConfig
        >>> bfm = HILPHandle(HILPModel(HILPConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6))
        >>> obs = np.zeros((3, 24), dtype=np.float32)
        >>> z = bfm.sample_z(1, seed=0)[0]
        >>> bfm.act(obs, z).shape, bfm.psi(obs, z).shape, bfm.goal_z(obs[0], obs[1]).shape
        ((3, 6), (2, 3, 8), (8,))
    """

    _folder = FOLDER
    _repr_name = "HILPHandle"
    _model: HILPModel

    def phi(self, obs: Array, z: Any = None) -> Array:
        """Centred Hilbert features ``phi~(s) = phi(s) - mean(phi)``: ``(batch, z_dim)`` (``z`` is
        accepted for FB's signature and ignored)."""
        s, single = self._obs_rows("obs", obs)
        return self._out(self._model.phi(s), obs, single)  # type: ignore[return-value]

    def value(self, obs: Array, goal_obs: Array) -> Array:
        """Goal-conditioned values ``-||phi_k(s) - phi_k(g)||`` of both phi networks: ``(2, batch)``."""
        s, single = self._obs_rows("obs", obs)
        g, _ = self._obs_rows("goal_obs", goal_obs)
        return self._out(self._model.value(s, g.expand_as(s)), obs, single, batch_axis=1)  # type: ignore[return-value]

    def _check_labels(self, n: int) -> None:
        """Least-squares inference (``w = argmin ||phi~(S') w - r||``) needs ``n >= z_dim``."""
        if n < self.z_dim:
            raise ValueError(f"least-squares inference needs at least z_dim={self.z_dim} samples, "
                             f"got {n}; label more transitions")

    def goal_z(self, goal_obs: Array, obs: Any = None) -> Array:
        """``proj(phi(g) - phi(s))`` for the current ``obs`` (``proj(phi~(g))`` without it)."""
        g, single = self._obs_rows("goal_obs", goal_obs)
        s = None
        if obs is not None:
            s, _ = self._obs_rows("obs", obs)
            s = s.expand_as(g) if s.shape[0] == 1 else s
        return self._out(self._model.goal_z(g, s), goal_obs, single)  # type: ignore[return-value]
