"""Configuration of the HILP model (Hilbert foundation policies) and of its training.

:class:`HILPConfig` is a frozen dataclass saved in every checkpoint. The defaults are the
official code's (``seohongpark/HILP``, folder ``hilp_zsrl``: ``url_benchmark/agent/sf.py``'s
``SFAgentConfig``, ``base_config.yaml``/``train_offline.py`` and the README's training commands);
each field's docstring names where its default comes from. :meth:`HILPConfig.preset` gives the
reference ("paper"), CPU-sized ("cpu") and test-sized ("tiny") settings per domain.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from bfm_gym.models._config import FamilyConfig
from bfm_gym.utils.checks import check_choices, check_even, check_ints, check_range

__all__ = ["HILPConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class HILPConfig(FamilyConfig):
    """Architecture, losses and training settings of a HILP model.

    Example:
        >>> [HILPConfig.preset(domain).hilp_gamma for domain in ("walker", "cheetah", "maze")]
        [0.96, 0.98, 0.99]
    """

    _family = "HILP"

    # --- architecture -------------------------------------------------------------------------
    z_dim: int = 50
    """Latent and feature dimension d (official ``z_dim: 50``)."""
    phi_hidden_dim: int = 512
    """Width of the phi networks (official ``phi_hidden_dim: 512``)."""
    phi_hidden_layers: int = 2
    """Hidden layers of phi: Linear-LayerNorm-tanh, then (L-1) x Linear-ReLU, then Linear(d)
    (official ``mlp(obs, h, "ntanh", h, "relu", d)``: L = 2)."""
    sf_hidden_dim: int = 1024
    """Width h of the successor-feature network psi (official ``hidden_dim: 1024``); its two
    input embeddings end in h/2 units (official ``feature_dim: 512``)."""
    sf_hidden_layers: int = 1
    """Linear(h)-ReLU layers of psi's MLP after the embeddings."""
    sf_embedding_layers: int = 2
    """Layers of each psi embedding ([s, a] and [s, z]); at least 2."""
    actor_hidden_dim: int = 1024
    """Width h of the actor (official ``hidden_dim: 1024``, embeddings of h/2 = 512)."""
    actor_hidden_layers: int = 1
    """Linear(h)-ReLU layers of the actor's MLP after the embeddings."""
    actor_embedding_layers: int = 2
    """Layers of each actor embedding; at least 2."""
    ensemble: int = 2
    """Heads of psi (official: two, ``F1, F2``)."""

    # --- Hilbert representation phi -----------------------------------------------------------
    hilp_gamma: float = 0.98
    """Discount of the goal-conditioned value V(s, g) = -||phi(s) - phi(g)|| (official
    ``hilp_discount``: 0.96 for walker, 0.98 for cheetah, quadruped and jaco in the README)."""
    expectile: float = 0.5
    """Expectile of the IQL-style value loss (official README ``hilp_expectile=0.5``; 0.9 is
    the goal-reaching HILP-G variant)."""
    phi_tau: float = 0.005
    """Polyak rate of the two target phi networks (official ``soft_update_params(..., 0.005)``)."""
    mean_rate: float = 0.005
    """Rate of the running mean of phi(s) that centres the features (official: 0.995/0.005)."""
    future: float = 0.99
    """Goal = a future state of the same trajectory, ``k ~ Geometric(1 - future)`` steps ahead
    (official ``future: 0.99``)."""
    p_random_goal: float = 0.375
    """Probability of a random dataset state as goal instead (official README
    ``p_randomgoal=0.375``)."""
    lr_phi: float = 5e-4
    """Adam learning rate of phi (official ``lr * lr_coef`` = 1e-4 x 5)."""

    # --- successor features and actor ---------------------------------------------------------
    gamma: float = 0.98
    """Discount of the successor features (official ``discount: 0.98``)."""
    lr_sf: float = 1e-4
    """Adam learning rate of psi (official ``lr: 1e-4``)."""
    lr_actor: float = 1e-4
    """Adam learning rate of the actor (official ``lr: 1e-4``)."""
    sf_tau: float = 0.01
    """Polyak rate of psi's target network (official ``sf_target_tau: 0.01``)."""
    ema_tau: float = 0.0
    """> 0: keep a moving average of the weights for export, as FB's ``ema_tau`` (this
    project's; :class:`~bfm_gym.models.averaging.WeightEMA`); ``phi_mean``, itself a running
    mean, stays the online one. 0 = off."""
    batch_size: int = 1024
    """Transitions per update (official ``batch_size: 1024``)."""
    mix_ratio: float = 0.5
    """Fraction of the batch's z replaced by ``proj(Cov^+ phi(s'))`` of dataset next states,
    the rest uniform on the sphere (official ``mix_ratio: 0.5``)."""
    q_loss: bool = False
    """Fit psi through ``psi^T z`` only instead of the full vector (official README:
    ``q_loss=False`` for walker and cheetah, ``True`` for quadruped and jaco)."""
    actor_std: float = 0.2
    """Standard deviation of the actor's Gaussian noise (official ``stddev_schedule: 0.2``)."""
    stddev_clip: float = 0.3
    """Noise clip before the action clip to [-1, 1] (official ``stddev_clip: 0.3``)."""
    actor_pessimism: float = 0.5
    """Penalty on the head disagreement in the actor loss; 0.5 with two heads is the minimum
    over heads, as the official ``torch.min(Q1, Q2)``."""

    # --- speed switches (this project's; the official code runs fp32 on a GPU) ----------------
    amp: Literal["auto", "bf16", "off"] = "auto"
    """Mixed precision of the forward passes, as FB's: "auto" = bf16 on CUDA and on CPUs with
    native bf16 (AVX512-BF16 or AMX), fp32 elsewhere; "bf16" forces it; "off" = fp32. Losses,
    distances, the feature covariance and its pseudo-inverse are computed in fp32."""
    fused_adam: bool = True
    """Use the fused Adam kernel when the device supports it (else the foreach one)."""

    def __post_init__(self) -> None:
        check_ints(self, ("z_dim", "phi_hidden_dim", "phi_hidden_layers", "sf_hidden_dim",
                          "sf_hidden_layers", "actor_hidden_dim", "actor_hidden_layers", "ensemble"))
        check_ints(self, ("sf_embedding_layers", "actor_embedding_layers", "batch_size"), 2)
        check_even(self, ("sf_hidden_dim", "actor_hidden_dim"), " (the embeddings output h/2 units)")
        check_range(self, ("gamma", "hilp_gamma", "expectile", "future"), "(0, 1)")
        check_range(self, ("phi_tau", "sf_tau", "mean_rate", "p_random_goal", "mix_ratio", "ema_tau"),
                    "[0, 1]")
        check_range(self, ("lr_phi", "lr_sf", "lr_actor", "actor_std"), "> 0")
        check_range(self, ("stddev_clip", "actor_pessimism"), ">= 0")
        for name in ("q_loss", "fused_adam"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"HILPConfig.{name} must be true or false, got {getattr(self, name)!r}")
        check_choices(self)

    @classmethod
    def preset(cls, domain: str, size: Literal["paper", "cpu", "tiny"] = "cpu",
               **overrides: Any) -> HILPConfig:
        """Per-domain settings.

        * ``"paper"``: the official code's defaults (the field docstrings), with the README's
          per-domain ``hilp_discount`` (walker 0.96, else 0.98) and ``q_loss`` (quadruped
          True). point_mass_maze has no official HILP command: it uses gamma = hilp_gamma =
          0.99, this project's choice, matching the maze FB preset's discount.
        * ``"cpu"``: sized like the FB ``cpu`` preset for 2 CPU cores and O(1e5) updates:
          psi and actor hidden 256 (embeddings 128), phi hidden 256, batch 512, z_dim 50.
        * ``"tiny"``: for tests: z_dim 8, hidden 32, batch 64, learning rates 1e-3.

        Raises:
            ValueError: Unknown domain or size (with the closest valid name), or a bad override.
        """
        domain = cls._preset_domain(domain, size)
        values: dict[str, Any] = {"hilp_gamma": 0.98, "gamma": 0.98, "q_loss": False}
        if size == "cpu":
            values.update(phi_hidden_dim=256, sf_hidden_dim=256, actor_hidden_dim=256, batch_size=512)
        elif size == "tiny":
            values.update(z_dim=8, phi_hidden_dim=32, sf_hidden_dim=32, actor_hidden_dim=32,
                          batch_size=64, lr_phi=1e-3, lr_sf=1e-3, lr_actor=1e-3)
        values.update(cls._domain_values(domain, size))  # the domain's own (Domain.presets)
        values.update(overrides)
        return cls.from_dict(values)


