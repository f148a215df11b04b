"""``FBHandle`` (historical name ``BFM``): the frozen handle on a trained FB model.

It implements the :class:`bfm_gym.models.protocol.BFM` protocol that wrappers and adapters use;
the array boundary (validation, numpy/torch in and out, single rows) and the operations every
family shares are :class:`~bfm_gym.models._handle.FamilyHandle`'s. This module adds FB's own:
``B`` (:meth:`FBHandle.backward`), ``phi = Cov^{-1} B``, goal inference ``proj(B(g))``, the
covariance and FB-AWARE's latent blocks.

Latents are used as given: project them first (:meth:`BFM.project`), as every reference
implementation expects (docs/algorithms.md#pitfall-projection); the latent-action wrapper does this in one place.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._handle import Array, FamilyHandle
from .checkpoint import FOLDER
from .model import FBModel

__all__ = ["BFM", "FBHandle"]


class FBHandle(FamilyHandle):
    """A frozen FB behavioural foundation model: ``pi``, ``B``/``phi``, ``F``/``psi``, inference.

    Args:
        model: The trained model; it is put in eval mode and frozen (``requires_grad=False``).
        metadata: Domain, dataset, spaces bounds and training steps.

    Example:
        >>> from bfm_gym.models.fb import FBConfig
        >>> bfm = FBHandle(FBModel(FBConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6))
        >>> obs = np.zeros((3, 24), dtype=np.float32)
        >>> z = bfm.sample_z(1, seed=0)[0]
        >>> bfm.act(obs, z).shape, bfm.act(obs[0], z).shape, type(bfm.act(obs, z)).__name__
        ((3, 6), (6,), 'ndarray')
        >>> bfm.infer_z(obs, np.ones(3)).shape
        (8,)
    """

    _folder = FOLDER
    _repr_name = "BFM"
    _model: FBModel

    @property
    def block_sizes(self) -> tuple[int, ...]:
        """Latent blocks: ``config.block_sizes`` for an auto-regressive model, else ``(z_dim,)``."""
        c = self._model.config
        return tuple(c.block_sizes) if c.ar_blocks > 1 else (c.z_dim,)

    @property
    def cov(self) -> np.ndarray:
        """``(d, d)`` uncentred ``E[B B^T]`` over dataset states (identity if never finalized)."""
        return self._model.cov.detach().cpu().numpy().copy()

    @property
    def cov_finalized(self) -> bool:
        """True when :attr:`cov` was computed from data."""
        return bool(self._model.cov_samples.item() > 0)

    def fast_features(self) -> Any:
        """:class:`~bfm_gym.models.fb.fast_policy.FBFeatures` of this model (numpy phi and
        psi, checked against the handle's), or None where they do not apply (an
        auto-regressive B, a model off CPU)."""
        from bfm_gym.models.fb.fast_policy import FBFeatures

        return FBFeatures.build(self)

    # --- FB's own operations ----------------------------------------------------------------------
    def backward(self, obs: Array, z: np.ndarray | torch.Tensor | None = None) -> Array:
        """Backward embedding ``B(s)`` (``B(s, z)`` for an auto-regressive model; see ``FBModel.backward``).

        Returns:
            ``(batch, z_dim)`` or ``(z_dim,)``.
        """
        return self._state_map(self._model.backward, obs, z)

    def phi(self, obs: Array, z: np.ndarray | torch.Tensor | None = None) -> Array:
        """State features ``phi(s) = Cov^{-1} B(s)``: ``(batch, z_dim)`` or ``(z_dim,)``."""
        return self._state_map(self._model.phi, obs, z)

    def _state_map(self, fn: Any, obs: Array, z: np.ndarray | torch.Tensor | None) -> Array:
        s, single = self._obs_rows("obs", obs)
        zz = None if z is None else self._z_rows(z, s.shape[0])
        return self._out(fn(s, zz), obs, single)  # type: ignore[return-value]

    def goal_z(self, goal_obs: Array, obs: Any = None) -> Array:
        """Goal inference ``z = proj(B(g))``: ``(batch, z_dim)`` or ``(z_dim,)``; ``obs`` is not
        needed by FB (accepted for the protocol) and ignored."""
        s, single = self._rows(
            "goal_obs", goal_obs, self.obs_dim, f"goal observations, obs_dim={self.obs_dim}"
        )
        return self._out(self._model.goal_z(s), goal_obs, single)  # type: ignore[return-value]

    def _repr_fields(self) -> str:
        return f", ar_blocks={self.config.ar_blocks}"


BFM = FBHandle
"""Historical name of :class:`FBHandle` (code written before the model families)."""
