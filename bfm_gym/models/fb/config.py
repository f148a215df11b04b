"""Configuration of the Forward-Backward (FB) model and of its training (FB and FB-AWARE).

One frozen dataclass, :class:`FBConfig`, holds the architecture, the losses and the speed
switches. It round-trips through JSON (:meth:`FBConfig.to_dict` / :meth:`FBConfig.from_dict`)
and is saved in every checkpoint. :meth:`FBConfig.preset` gives the reference ("paper"),
CPU-sized ("cpu") and test-sized ("tiny") settings per DMC domain.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from bfm_gym.utils.checks import check_choices, check_even, check_ints, check_range

from .._config import DOMAINS, PRESET_SIZES, FamilyConfig

__all__ = ["DOMAINS", "PRESET_SIZES", "FBConfig"]

@dataclasses.dataclass(frozen=True, kw_only=True)
class FBConfig(FamilyConfig):
    """Architecture, losses and speed switches of an FB / FB-AWARE model.

    Defaults are the metamotivo DMC values (docs/algorithms.md#fb-defaults) except ``z_dim`` (50, as in
    controllable_agent and opti-bfm). Use :meth:`preset` for per-domain settings.

    Example:
        >>> FBConfig.preset("walker", "tiny").f_hidden_dim, FBConfig.preset("walker", "paper").z_dim
        (32, 100)
    """

    _family = "FB"

    # --- architecture -------------------------------------------------------------------------
    z_dim: int = 50
    """Latent dimension d; every z lives on the sphere of radius sqrt(d)."""
    f_hidden_dim: int = 1024
    """Width h of F's embeddings (their last layer has h/2 units) and of its MLP."""
    f_hidden_layers: int = 1
    """Number of Linear(h)-ReLU layers of F's MLP after the two embeddings."""
    f_embedding_layers: int = 2
    """Layers of each F embedding (embed_sa, embed_sz); at least 2."""
    b_hidden_dim: int = 256
    """Width of B's hidden layers (of every block when ``ar_blocks > 1``)."""
    b_hidden_layers: int = 2
    """Number of hidden layers of B: Linear-LayerNorm-tanh, then (L-1) x Linear-ReLU."""
    actor_hidden_dim: int = 1024
    """Width h of the actor's embeddings (embed_s, embed_sz) and of its MLP."""
    actor_hidden_layers: int = 1
    """Number of Linear(h)-ReLU layers of the actor's MLP after the embeddings."""
    actor_embedding_layers: int = 2
    """Layers of each actor embedding; at least 2."""
    ensemble: int = 2
    """Number of F heads, evaluated in one batched pass (metamotivo's num_parallel)."""
    ensemble_mode: Literal["batched", "looped"] = "batched"
    """"batched": stacked head weights, one baddbmm per layer; "looped": a python loop over
    independent heads (slower, kept only as the speed benchmark's baseline)."""

    # --- FB loss --------------------------------------------------------------------------------
    gamma: float = 0.98
    """Discount factor; multiplied by (1 - terminated) in the TD target (truncation is not terminal)."""
    lr_f: float = 1e-4
    """Adam learning rate of F."""
    lr_b: float = 1e-4
    """Adam learning rate of B."""
    lr_actor: float = 1e-4
    """Adam learning rate of the actor pi."""
    tau: float = 0.01
    """Polyak rate of the F and B target networks, applied after every gradient step."""
    batch_size: int = 1024
    """Transitions per update; the FB loss uses the batch x batch matrix M = F^T B."""
    ortho_coef: float = 1.0
    """Weight of the orthonormality loss on B."""
    train_goal_ratio: float = 0.5
    """Fraction of training z drawn as proj(B(g)) with g a shuffled next observation of the batch."""
    fb_pessimism: float = 0.0
    """Penalty on the F-head disagreement in the FB target (0 = plain ensemble mean)."""
    ema_tau: float = 0.0
    """> 0: keep an exponential moving average of the weights (rate ``ema_tau`` per update,
    horizon ~1/ema_tau updates; :class:`~bfm_gym.models.averaging.WeightEMA`) beside the online
    ones; exported models, evaluations during training and the run's final model then use
    the averaged weights. 0 = off. Training itself is unchanged."""

    # --- actor ----------------------------------------------------------------------------------
    actor_std: float = 0.2
    """Standard deviation of the actor's Gaussian noise around its tanh mean."""
    stddev_clip: float = 0.3
    """The actor noise is clipped to [-stddev_clip, stddev_clip] before the action clip to [-1, 1]."""
    actor_pessimism: float = 0.5
    """Penalty on the F-head disagreement of Q in the TD3 actor loss (0.5: min of 2 heads)."""
    actor_bc: float = 0.0
    """Behaviour-cloning weight of the TD3 actor loss (this project's option, TD3+BC's form,
    Fujimoto & Gu 2021; 0 = off, the FB papers' loss). With ``actor_bc > 0`` the loss is
    ``-Q / mean|Q| + actor_bc * mean((pi_mean(s, z) - a_data)^2)``: Q divided by its batch mean
    magnitude (no gradient through the divisor), so the weight has no unit (TD3+BC's alpha 2.5
    is ``actor_bc = 0.4``). It keeps the actor near the dataset's actions, where F was trained,
    against an actor that drifts to actions F overvalues (on cheetah RND data the plain actor
    settled on constant saturated actions that hold the body still within 10-15k updates)."""
    actor_loss: Literal["td3", "awr"] = "td3"
    """"td3": maximise mean_k Q_k - actor_pessimism * unc; "awr": FB-AWARE
    advantage-weighted likelihood of dataset actions (docs/algorithms.md#fb-actor, #fb-aware-aw)."""
    awr_beta: float = 1.0
    """AWR temperature, applied to advantages divided by their batch standard deviation, so it
    has no unit: w_i ∝ exp(A_i / (beta * std(A))). Chosen here (UNVERIFIED in the paper)."""
    awr_weight_clip: float = 20.0
    """Upper clip of the self-normalised AWR weights (mean weight 1). Chosen here (UNVERIFIED)."""

    # --- FB-AWARE auto-regressive B -------------------------------------------------------------
    ar_blocks: int = 1
    """1 = plain FB; K > 1 = auto-regressive B with K blocks, block k sees [s, z^{1:k-1}]."""
    ar_z_groups: int = 8
    """With ar_blocks > 1: number of distinct z per batch. B(s'_j, z) must be evaluated for every
    (z, s'_j) pair, so the batch is split into groups sharing one z (cost: groups x batch B
    evaluations). Must divide batch_size. Ignored when ar_blocks == 1."""

    # --- speed switches -------------------------------------------------------------------------
    amp: Literal["auto", "bf16", "off"] = "auto"
    """Mixed precision of the forward passes: "auto" = bf16 on CUDA and on CPUs with native bf16
    (AVX512-BF16 or AMX), fp32 elsewhere; "bf16" forces bf16 autocast; "off" = fp32."""
    compile: bool = False
    """torch.compile the loss computations (first updates are slow while it compiles)."""
    fused_adam: bool = True
    """Use the fused Adam kernel when the device supports it (else the foreach one)."""

    def __post_init__(self) -> None:
        check_ints(self, (
            "z_dim", "f_hidden_dim", "f_hidden_layers", "b_hidden_dim", "b_hidden_layers",
            "actor_hidden_dim", "actor_hidden_layers", "ensemble", "ar_blocks", "ar_z_groups",
        ))  # fmt: skip
        check_ints(self, ("f_embedding_layers", "actor_embedding_layers"), 2,
                   " (embeddings end in h/2 units)")
        check_even(self, ("f_hidden_dim", "actor_hidden_dim"), " (the embeddings output h/2 units)")
        check_ints(self, ("batch_size",), 2, " (the FB loss needs off-diagonal pairs)")
        check_range(self, ("gamma",), "(0, 1)")
        check_range(self, ("lr_f", "lr_b", "lr_actor", "actor_std", "awr_beta", "awr_weight_clip"), "> 0")
        check_range(self, ("tau", "train_goal_ratio", "ema_tau"), "[0, 1]")
        check_range(self, ("ortho_coef", "fb_pessimism", "actor_pessimism", "stddev_clip", "actor_bc"), ">= 0")
        check_choices(self)
        if self.actor_bc > 0 and self.actor_loss != "td3":
            raise ValueError(
                f"FBConfig.actor_bc ({self.actor_bc}) weights a term of the TD3 actor loss; with "
                f"actor_loss={self.actor_loss!r} (already a weighted likelihood of dataset actions) "
                "set actor_bc=0."
            )
        if self.ar_blocks > self.z_dim:
            raise ValueError(
                f"FBConfig.ar_blocks ({self.ar_blocks}) cannot exceed z_dim ({self.z_dim}): every block needs >= 1 dimension"
            )
        if self.ar_blocks > 1 and self.batch_size % self.ar_z_groups:
            raise ValueError(
                f"FBConfig.ar_z_groups ({self.ar_z_groups}) must divide batch_size ({self.batch_size}) "
                f"when ar_blocks > 1; e.g. use ar_z_groups={_largest_divisor(self.batch_size, self.ar_z_groups)}"
            )

    # --- derived --------------------------------------------------------------------------------
    @property
    def block_sizes(self) -> tuple[int, ...]:
        """Sizes (d_1, ..., d_K) of the z blocks: z_dim split as evenly as possible, larger first."""
        q, r = divmod(self.z_dim, self.ar_blocks)
        return tuple(q + (1 if k < r else 0) for k in range(self.ar_blocks))

    @classmethod
    def preset(
        cls, domain: str, size: Literal["paper", "cpu", "tiny"] = "cpu", **overrides: Any
    ) -> FBConfig:
        """Per-domain settings.

        * ``"paper"``: metamotivo's ``examples/fb_train_dmc.py``: z_dim 100 for
          walker and point_mass_maze, 50 for cheetah and quadruped; F and actor hidden 1024,
          B 256 x 2, batch 1024, lr 1e-4; point_mass_maze: lr_b = lr_actor = 1e-6, gamma 0.99;
          other domains gamma 0.98. Meant for ~3M updates on a GPU.
        * ``"cpu"``: sized for 2 CPU cores and O(1e5) updates. z_dim 50 for every domain (the
          controllable_agent / opti-bfm value; fewer dimensions for B to make orthonormal in
          fewer updates; d only costs the last layers, so speed is not the reason). F and actor
          hidden 256: the F/actor MLPs dominate the cost (an update is matmul-bound at ~90
          GFLOP/s per AVX2 core) and the cost grows with h^2; measured on one core of the
          2-core dev machine (walker, batch 512): h=256 ~15 updates/s, h=384 ~10, h=512 ~6.4,
          paper size ~1, so h=256 gives ~2e5 updates in under 4 hours. 256 units with 128-unit
          embeddings is the size of the TD3/IQL critics that learn DMC locomotion offline. B
          keeps the paper's 256 x 2 (it is cheap, and reward inference depends on it). Batch 512
          halves the cost and the FB loss still sees 512^2 - 512 negative pairs.
          point_mass_maze: gamma 0.99 and z_dim 100 as in the paper, and lr_b = lr_actor = 1e-4
          (the cpu size's rate) instead of the paper's 1e-6: the recipe table of
          ``benchmarks/recipes.py`` (README, "Pre-training") measured this recipe at 544 mean
          zero-shot return after 30k updates (0.79 CPU-hours), against 9 after 20k with
          lr_b = lr_actor = 1e-5 and 186 after 30k with z_dim 50 (the values this preset had
          before stop 27). With Adam a weight moves at most ~lr per update, so the paper's 1e-6
          leaves B and pi near their random init after the O(1e4-1e5) updates a CPU affords.
          cheetah (since stop 39): a moving average of the weights (ema_tau 1e-4) and TD3+BC's
          behaviour-cloning term (actor_bc 0.1), the recipe of the shipped cheetah model. On
          the same RND data the plain recipe's actor collapsed to one saturated action within
          15k updates (moving-average mean over 5k-50k: 83), this one scored 312 / 354 / 273 on
          three training seeds' checkpoints (5k-40k) and gave the model that meets the floor;
          on walker the same term held the model back, so other domains keep actor_bc 0
          (README, "Behaviour cloning in the actor").
        * ``"tiny"``: for tests: z_dim 8, hidden 32, batch 64.

        Args:
            domain: A registered domain (``"pointmass"`` is accepted for point_mass_maze); its
                settings for FB come from its record (``Domain.presets["fb"]``).
            size: One of :data:`PRESET_SIZES`.
            **overrides: Fields to change after the preset is applied.

        Raises:
            ValueError: Unknown domain or size (with the closest valid name), or a bad override.
        """
        domain = cls._preset_domain(domain, size)
        values: dict[str, Any] = {"gamma": 0.98}
        if size == "paper":
            values.update(
                z_dim=50, f_hidden_dim=1024, actor_hidden_dim=1024, b_hidden_dim=256, b_hidden_layers=2,
                batch_size=1024, lr_f=1e-4, lr_b=1e-4, lr_actor=1e-4,
            )  # fmt: skip
        elif size == "cpu":
            values.update(
                z_dim=50, f_hidden_dim=256, actor_hidden_dim=256, b_hidden_dim=256, b_hidden_layers=2,
                batch_size=512, lr_f=1e-4, lr_b=1e-4, lr_actor=1e-4,
            )  # fmt: skip
        else:
            values.update(
                z_dim=8, f_hidden_dim=32, actor_hidden_dim=32, b_hidden_dim=32, b_hidden_layers=2,
                batch_size=64, lr_f=1e-3, lr_b=1e-3, lr_actor=1e-3, ar_z_groups=4,
            )  # fmt: skip
        values.update(cls._domain_values(domain, size))  # the domain's own (Domain.presets)
        values.update(overrides)
        return cls.from_dict(values)


def _largest_divisor(n: int, at_most: int) -> int:
    """Largest divisor of ``n`` not above ``at_most`` (for error hints)."""
    return max(k for k in range(1, max(1, min(n, at_most)) + 1) if n % k == 0)
