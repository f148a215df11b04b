"""Networks of the HILP model.

* ``phi(s)``: Linear(h) -> LayerNorm -> tanh -> [Linear(h) -> ReLU] x (L-1) -> Linear(d), two
  independent copies (phi_1, phi_2) for the clipped double value (official ``HILP`` feature
  learner: ``mlp(obs, h, "ntanh", h, "relu", d)``).
* ``psi(s, a, z)`` and ``pi(s, z)``: the same architectures as FB's forward map and actor
  (the official code builds them from the same ``ForwardMap``/``Actor`` modules), reused from
  :mod:`bfm_gym.models.fb.networks`; so the fast policy path of FB runs HILP's actor too.
"""

from __future__ import annotations

import torch
from torch import nn

from bfm_gym.models.fb.networks import Actor, ForwardMap, norm_tanh_mlp

__all__ = ["Actor", "ForwardMap", "PhiNet"]


class PhiNet(nn.Module):
    """Hilbert representation ``phi(s) -> R^d``.

    Shapes:
        ``obs (batch, obs_dim) -> (batch, d)``.
    """

    def __init__(self, obs_dim: int, z_dim: int, hidden_dim: int, hidden_layers: int) -> None:
        super().__init__()
        self.net = norm_tanh_mlp(obs_dim, z_dim, hidden_dim, hidden_layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)
