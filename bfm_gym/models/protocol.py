"""The ``BFM`` protocol: the one model API that wrappers, adapters, experiments and plugins use.

A behavioural foundation model of any family (FB, HILP, a plugin's) is a frozen handle with
the successor-feature interface shared by these methods:

* ``phi(s)`` in R^d: state features; a reward is modelled as linear, ``r(s) ~ phi(s)^T w``.
* ``psi(s, a, z)`` in R^d (one per critic head): successor features of ``pi_z``, so that
  ``Q_w(s, a) = psi(s, a, z)^T w``.
* ``pi(a | s, z)``: the latent-conditioned policy (:meth:`BFM.act`).
* ``infer_z(next_obs, rewards)``: zero-shot task inference (each family has its own
  estimator: ``E[r B]`` for FB, least squares on ``phi`` for HILP); ``goal_z`` for goals.

Latents live on the sphere of radius sqrt(d) (per block for a blocked latent, see
:attr:`BFM.block_sizes`); :meth:`BFM.project` maps any nonzero vector there, and callers
project before they call ``act``/``psi`` (the latent wrapper does it in one place).

Arrays in, arrays out: numpy inputs give float32 numpy outputs, torch inputs give torch
outputs on the input's device; a single row ``(dim,)`` gives an output without batch axis.

A family registers how to load its folders (``config.json``'s ``"format"``) in
:mod:`bfm_gym.models.registry`; :func:`bfm_gym.load` dispatches there.

Optional, outside the protocol (callers look for it with ``getattr`` and fall back to the
methods above): ``fast_features()`` returns an object with numpy ``phi(obs)`` of one state
and ``psi(obs, z)`` of n latents at one state, for callers that need them at every env step
(OpTI-BFM), or None. FB's handle returns one; a family without it loses only speed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

if TYPE_CHECKING:
    from bfm_gym.models.inference import InferenceSet

__all__ = ["BFM", "PolicyRunnerLike"]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@runtime_checkable
class PolicyRunnerLike(Protocol):
    """The policy mean on a fixed batch read from preallocated numpy buffers (the wrappers'
    per-step path). Write observations into :attr:`obs`, projected latents into :attr:`z`, call.
    """

    obs: np.ndarray
    """``(batch, obs_dim)`` float32 buffer."""
    z: np.ndarray
    """``(batch, z_dim)`` float32 buffer."""
    path: str
    """Which implementation runs (for benchmarks and logs)."""

    def __call__(self) -> np.ndarray:
        """``(batch, action_dim)`` float32 policy means (may be a reused buffer)."""
        ...

    # Optional capabilities, looked up with getattr (a family may leave them out):
    # ``use_matrix_products() -> bool`` trades bitwise row independence for speed
    # (``LatentActionVectorEnv(exact=False)``); ``independent_rows: bool`` says that each row's
    # action is bitwise the same whatever the batch and that a call runs no torch op, so a
    # vector env's worker processes may compute their own envs' rows.


@runtime_checkable
class BFM(Protocol):
    """A frozen behavioural foundation model, whatever its family.

    Shapes: ``obs (batch, obs_dim)``, ``z (batch, z_dim)`` or one ``(z_dim,)`` broadcast over
    the batch, ``action (batch, action_dim)`` in [-1, 1]. Per-head outputs have the heads first:
    ``(E, batch, z_dim)``.
    """

    family: str
    """The family's ``config.json`` format, e.g. ``"bfm_gym.fb"`` or ``"bfm_gym.hilp"``."""
    source: str | None
    """Folder the model was loaded from (None in memory); lets wrappers record a spec."""

    @property
    def z_dim(self) -> int:
        """Latent dimension d."""
        ...

    @property
    def obs_dim(self) -> int:
        """Observation size."""
        ...

    @property
    def action_dim(self) -> int:
        """Action size (actions in [-1, 1])."""
        ...

    @property
    def gamma(self) -> float:
        """Discount of the successor features."""
        ...

    @property
    def ensemble(self) -> int:
        """Number of critic heads E returned by :meth:`psi`."""
        ...

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        ...

    @property
    def block_sizes(self) -> tuple[int, ...]:
        """Sizes of the latent blocks, each projected on its own sphere (``(z_dim,)``: one)."""
        ...

    @property
    def metadata(self) -> Any:
        """:class:`~bfm_gym.models.fb.checkpoint.ModelMetadata`: domain, dataset, spaces, steps."""
        ...

    @property
    def samples(self) -> InferenceSet | None:
        """Reward-labelled inference samples shipped with the model (None if it ships none)."""
        ...

    def project(self, z: Array) -> Array:
        """``proj(z) = sqrt(d) z / ||z||`` (per block); keeps z's shape."""
        ...

    def sample_z(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """``(n, z_dim)`` latents uniform on the latent sphere."""
        ...

    def act(self, obs: Array, z: Any, noise: bool = False, *, seed: int | None = None,
            grad: bool = False) -> Array:
        """``pi(s, z)``'s mean (or a noisy sample): ``(batch, action_dim)``."""
        ...

    def phi(self, obs: Array) -> Array:
        """Reward features ``phi(s)``: ``(batch, z_dim)``."""
        ...

    def psi(self, obs: Array, z: Any, action: Any = None, *, grad: bool = False) -> Array:
        """Successor features per head (policy-mean action when None): ``(E, batch, z_dim)``."""
        ...

    def q(self, obs: Array, action: Any, z: Any, *,
          reduce: Literal["mean", "min", "none"] = "mean", grad: bool = False) -> Array:
        """``Q(s, a) = psi(s, a, z)^T z`` reduced over heads: ``(batch,)`` (``"none"``: ``(E, batch)``)."""
        ...

    def infer_z(self, next_obs: Array, rewards: Any, *, project: bool = True) -> Array:
        """Zero-shot z from rewards on next states: ``(z_dim,)``; ``project=False`` gives the
        reward weights w with ``phi(s)^T w ~ r(s)`` (on the reward's own scale)."""
        ...

    def goal_z(self, goal_obs: Array, obs: Any = None) -> Array:
        """Latent that reaches ``goal_obs`` (from ``obs`` for families that need it)."""
        ...

    def policy_runner(self, batch: int = 1) -> PolicyRunnerLike:
        """A :class:`PolicyRunnerLike` for ``batch`` rows (a family may return a fast path)."""
        ...

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Atomically write the model folder; returns its path."""
        ...
