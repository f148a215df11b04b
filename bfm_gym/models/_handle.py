"""Shared plumbing of the family handles: input validation at the array boundary, attached
inference samples and a generic policy runner (:class:`HandleBase`), and the frozen handle of a
family model (:class:`FamilyHandle`: persistence, properties and the operations that read the
same in every family). The built-in families subclass :class:`FamilyHandle`; a plugin family
may subclass either (it is not required: the :class:`~bfm_gym.models.protocol.BFM` protocol is
what callers rely on)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import numpy as np
import torch

if TYPE_CHECKING:
    from bfm_gym.models._model import FamilyModel
    from bfm_gym.models.checkpoint import ModelFolder, ModelMetadata
    from bfm_gym.models.inference import InferenceSet

__all__ = ["ActRunner", "FamilyHandle", "HandleBase"]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


class ActRunner:
    """Generic :class:`~bfm_gym.models.protocol.PolicyRunnerLike`: ``bfm.act`` on numpy buffers.

    Args:
        bfm: Any model with ``act``, ``obs_dim``, ``z_dim``.
        batch: Rows per call.
    """

    path = "act"

    def __init__(self, bfm: Any, batch: int = 1) -> None:
        self._bfm = bfm
        self.batch = int(batch)
        self.obs = np.zeros((self.batch, bfm.obs_dim), np.float32)
        self.z = np.zeros((self.batch, bfm.z_dim), np.float32)

    def __call__(self) -> np.ndarray:
        return np.asarray(self._bfm.act(self.obs, self.z), dtype=np.float32)


_UNSET: Any = object()


class HandleBase:
    """Validation helpers and the ``samples`` / ``source`` attributes of a handle."""

    source: str | None = None
    _samples: Any = _UNSET

    # subclasses define these
    obs_dim: int
    z_dim: int
    device: torch.device

    @property
    def samples(self) -> InferenceSet | None:
        """Inference samples shipped in :attr:`source` (loaded on first use), or set by hand."""
        if self._samples is _UNSET:
            from bfm_gym.models.inference import INFERENCE_FILE, InferenceSet

            folder = self.source
            found = None
            if folder is not None:
                from pathlib import Path

                if (Path(folder) / INFERENCE_FILE).is_file():
                    found = InferenceSet.load(folder)
            self._samples = found
        return self._samples

    @samples.setter
    def samples(self, value: InferenceSet | None) -> None:
        self._samples = value

    @property
    def block_sizes(self) -> tuple[int, ...]:
        """One latent block: ``(z_dim,)``."""
        return (self.z_dim,)

    def policy_runner(self, batch: int = 1) -> Any:
        """A generic :class:`ActRunner` (families with a faster path override this)."""
        return ActRunner(self, batch)

    def fast_features(self) -> Any:
        """Numpy ``phi``/``psi`` for per-step callers, or None (the default: use the handle's
        methods); see :mod:`bfm_gym.models.protocol`."""
        return None

    # --- input handling -------------------------------------------------------------------------
    def _rows(
        self, name: str, x: np.ndarray | torch.Tensor, dim: int, what: str
    ) -> tuple[torch.Tensor, bool]:
        """``(batch, dim)`` float32 tensor on the model device, and whether x was a single row."""
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            try:
                x = np.asarray(x, dtype=np.float32)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{name} must be a numpy array or torch tensor of shape (batch, {dim}) or ({dim},), got {type(x).__name__}"
                ) from err
        if x.ndim not in (1, 2) or x.shape[-1] != dim:
            raise ValueError(
                f"{name} must have shape (batch, {dim}) or ({dim},) ({what}), got {tuple(x.shape)}"
            )
        if isinstance(x, np.ndarray) and not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)  # torch refuses negative strides (x[::-1])
        t = torch.as_tensor(x).to(device=self.device, dtype=torch.float32)
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds NaN or inf values; expected finite {what}")
        single = t.ndim == 1
        return (t.unsqueeze(0) if single else t), single

    def _obs_rows(self, name: str, x: Any) -> tuple[torch.Tensor, bool]:
        return self._rows(name, x, self.obs_dim, f"observations, obs_dim={self.obs_dim}")

    def _z_rows(self, z: np.ndarray | torch.Tensor, batch: int) -> torch.Tensor:
        t, _ = self._rows("z", z, self.z_dim, f"latents, z_dim={self.z_dim}")
        if t.shape[0] == batch:
            return t
        if t.shape[0] == 1:
            return t.expand(batch, -1)
        raise ValueError(
            f"z has {t.shape[0]} rows but the observations have {batch}; pass one z per row or a single ({self.z_dim},) z"
        )

    def _reward_rows(self, rewards: Any, n: int) -> torch.Tensor:
        if not isinstance(rewards, (np.ndarray, torch.Tensor)):
            rewards = np.asarray(rewards, dtype=np.float32)
        if tuple(rewards.shape) not in ((n,), (n, 1)):
            raise ValueError(
                f"rewards must have shape ({n},) or ({n}, 1) to match next_obs, got {tuple(rewards.shape)}"
            )
        r = torch.as_tensor(rewards).to(device=self.device, dtype=torch.float32).reshape(n)
        if not bool(torch.isfinite(r).all()):
            raise ValueError(
                f"rewards hold {int((~torch.isfinite(r)).sum())} NaN/inf value(s); expected finite rewards"
            )
        return r

    @staticmethod
    def _out(
        y: torch.Tensor, like: np.ndarray | torch.Tensor, single: bool, batch_axis: int = 0
    ) -> np.ndarray | torch.Tensor:
        if single:
            y = y.squeeze(batch_axis)
        if isinstance(like, torch.Tensor):
            return y.to(like.device)
        return y.detach().cpu().numpy().astype(np.float32, copy=False)


def _from_model(name: str, doc: str) -> Any:
    """A read-only property returning ``self._model.<name>``."""
    return property(lambda self: getattr(self._model, name), doc=doc)


class FamilyHandle(HandleBase):
    """A frozen family model (:class:`~bfm_gym.models._model.FamilyModel`) behind the
    :class:`~bfm_gym.models.protocol.BFM` protocol.

    Arrays in, arrays out: numpy inputs give numpy outputs (float32), torch inputs give torch
    outputs on the input's device. Inputs may be batched ``(batch, dim)`` or a single row
    ``(dim,)`` (the output then has no batch dimension). Everything is validated at this
    boundary and errors name what was expected and what was received.

    A family sets ``_folder`` (its :class:`~bfm_gym.models.checkpoint.ModelFolder`) and
    adds what only it has (``phi``, ``goal_z``...).

    Args:
        model: The trained model; it is put in eval mode and frozen (``requires_grad=False``).
        metadata: Domain, dataset, spaces bounds and training steps.
    """

    _folder: ClassVar[ModelFolder]
    """How this family's model folders are written and read."""
    _repr_name: ClassVar[str]
    """Name that :meth:`__repr__` shows."""

    def __init__(self, model: FamilyModel, metadata: ModelMetadata | None = None) -> None:
        from bfm_gym.models.checkpoint import ModelMetadata

        self._model = model.train(False).requires_grad_(False)
        self._metadata = metadata or ModelMetadata()
        self.source: str | None = None
        """Folder this model was loaded from (None for an in-memory model)."""

    family: ClassVar[str]
    """``config.json`` format of this family (set from ``_folder``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_folder" in cls.__dict__:
            cls.family = cls._folder.format_name

    # --- persistence ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Any:
        """Load a model folder (``config.json`` + ``model.safetensors``) of this family.

        Raises:
            CheckpointError: The folder is missing, incomplete, corrupted or of another format.
        """
        model, metadata = cls._folder.load(path, device=device)
        bfm = cls(model, metadata)
        bfm.source = str(path)  # lets wrappers record a rebuildable spec
        return bfm

    @classmethod
    def create(
        cls,
        obs_dim: int,
        action_dim: int,
        *,
        domain: str = "walker",
        size: str = "tiny",
        seed: int = 0,
        **overrides: Any,
    ) -> Any:
        """An untrained model of the config preset ``size`` for ``domain`` (weights seeded by
        ``seed``; the global torch RNG is left as it was)."""
        from bfm_gym.models.checkpoint import ModelMetadata

        config = cls._folder.config_class.preset(domain, size, **overrides)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls._folder.model_class(config, obs_dim, action_dim)
        return cls(model, ModelMetadata(domain=domain))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Atomically save as a model folder; returns its path."""
        return self._folder.save(self._model, path, self._metadata)

    def to(self, device: str | torch.device) -> Any:
        """Move the weights to ``device`` (in place); returns self."""
        self._model.to(device)
        return self

    # --- properties -------------------------------------------------------------------------------
    model = property(lambda self: self._model, doc="The underlying frozen model.")
    config = property(lambda self: self._model.config, doc="Architecture and training settings.")
    metadata = property(
        lambda self: self._metadata, doc="Domain, dataset, spaces bounds, training steps, library version."
    )
    z_dim = _from_model("z_dim", "Latent dimension d.")
    gamma = _from_model("gamma", "Discount of the successor features.")
    obs_dim = _from_model("obs_dim", "Observation size.")
    action_dim = _from_model("action_dim", "Action size (actions in [-1, 1]).")
    device = _from_model("device", "Device of the weights.")
    ensemble = property(
        lambda self: self._model.config.ensemble, doc="Number of successor-feature heads E."
    )

    def policy_runner(self, batch: int = 1) -> Any:
        """The fused numpy/torch actor (:class:`~bfm_gym.models.fb.fast_policy.PolicyRunner`;
        every built-in family's actor has FB's layout)."""
        from bfm_gym.models.fb.fast_policy import PolicyRunner

        return PolicyRunner(self._model, batch=batch)

    # --- operations -------------------------------------------------------------------------------
    def _obs_action_rows(
        self, obs: Any, action: Any
    ) -> tuple[torch.Tensor, bool, torch.Tensor]:
        """``(s, single, a)``: observations and actions as rows, with as many actions as states."""
        s, single = self._obs_rows("obs", obs)
        a, _ = self._rows("action", action, self.action_dim, f"actions, action_dim={self.action_dim}")
        if a.shape[0] != s.shape[0]:
            raise ValueError(f"action has {a.shape[0]} rows but obs has {s.shape[0]}")
        return s, single, a

    def act(
        self,
        obs: Array,
        z: np.ndarray | torch.Tensor,
        noise: bool = False,
        *,
        seed: int | None = None,
        grad: bool = False,
    ) -> Array:
        """Action of ``pi(. | s, z)``: the mean, or a noisy sample (clipped Gaussian, then [-1, 1]).

        Args:
            obs: ``(batch, obs_dim)`` or ``(obs_dim,)``.
            z: ``(batch, z_dim)`` or ``(z_dim,)`` (broadcast over the batch).
            noise: Sample instead of returning the mean.
            seed: Seed of the noise (global torch RNG when None).
            grad: Track gradients (torch inputs; e.g. w.r.t. z).

        Returns:
            ``(batch, action_dim)`` or ``(action_dim,)``, same type as ``obs``.
        """
        s, single = self._obs_rows("obs", obs)
        zz = self._z_rows(z, s.shape[0])
        gen = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        return self._out(self._model.act(s, zz, noise=noise, generator=gen, grad=grad), obs, single)  # type: ignore[return-value]

    def forward(
        self,
        obs: Array,
        action: np.ndarray | torch.Tensor,
        z: np.ndarray | torch.Tensor,
        *,
        grad: bool = False,
    ) -> Array:
        """Successor features of every head ``F_k(s, a, z)``.

        Returns:
            ``(E, batch, z_dim)`` or ``(E, z_dim)`` for a single row.
        """
        s, single, a = self._obs_action_rows(obs, action)
        zz = self._z_rows(z, s.shape[0])
        return self._out(self._model.forward(s, a, zz, grad=grad), obs, single, batch_axis=1)  # type: ignore[return-value]

    def psi(
        self,
        obs: Array,
        z: np.ndarray | torch.Tensor,
        action: np.ndarray | torch.Tensor | None = None,
        *,
        grad: bool = False,
    ) -> Array:
        """Successor features ``psi(s, a, z)`` per head (policy-mean action when None): ``(E, batch, z_dim)``."""
        if action is not None:
            return self.forward(obs, action, z, grad=grad)
        s, single = self._obs_rows("obs", obs)
        y = self._model.psi(s, self._z_rows(z, s.shape[0]), grad=grad)
        return self._out(y, obs, single, batch_axis=1)  # type: ignore[return-value]

    def q(
        self,
        obs: Array,
        action: np.ndarray | torch.Tensor,
        z: np.ndarray | torch.Tensor,
        *,
        reduce: Literal["mean", "min", "none"] = "mean",
        grad: bool = False,
    ) -> Array:
        """``Q(s, a) = F(s, a, z)^T z``; ``reduce`` over heads: ``(batch,)`` (``"none"``: ``(E, batch)``)."""
        s, single, a = self._obs_action_rows(obs, action)
        y = self._model.q(s, a, self._z_rows(z, s.shape[0]), reduce=reduce, grad=grad)
        return self._out(y, obs, single, batch_axis=1 if reduce == "none" else 0)  # type: ignore[return-value]

    def _check_labels(self, n: int) -> None:
        """Reject a reward-inference call with ``n`` labels the family cannot use (default: any n)."""

    def infer_z(
        self, next_obs: Array, rewards: np.ndarray | torch.Tensor, *, project: bool = True
    ) -> Array:
        """Zero-shot reward inference from reward-labelled next states (the family's maths:
        see its model's ``infer_z``).

        Args:
            next_obs: ``(n, obs_dim)`` next states of reward-labelled transitions.
            rewards: ``(n,)`` or ``(n, 1)`` rewards computed on those next states.
            project: Project onto the latent sphere (False: the raw estimate).

        Returns:
            ``(z_dim,)``.

        Raises:
            ValueError: Wrong shapes, NaN/inf in the inputs, or too few labels for the family.
        """
        s, _ = self._rows(
            "next_obs", next_obs, self.obs_dim, f"next observations, obs_dim={self.obs_dim}"
        )
        r = self._reward_rows(rewards, s.shape[0])
        self._check_labels(s.shape[0])
        return self._out(self._model.infer_z(s, r, project=project), next_obs, False)  # type: ignore[return-value]

    def project(self, z: Array) -> Array:
        """``proj(z) = sqrt(d) z / ||z||`` (per block for an auto-regressive model); keeps z's shape."""
        t, single = self._rows("z", z, self.z_dim, f"latents, z_dim={self.z_dim}")
        # _rows rejects NaN; a zero z maps to zero (normalize clamps the norm at 1e-12)
        return self._out(self._model.project(t), z, single)  # type: ignore[return-value]

    def sample_z(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """``n`` latents uniform on the latent sphere, as a ``(n, z_dim)`` numpy array."""
        gen = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        return self._model.sample_z(n, generator=gen).cpu().numpy()

    def _repr_fields(self) -> str:
        """Family-specific ``name=value`` pairs of :meth:`__repr__` (each led by ``", "``)."""
        return ""

    def __repr__(self) -> str:
        m = self._metadata
        return (
            f"{self._repr_name}(domain={m.domain!r}, obs_dim={self.obs_dim}, "
            f"action_dim={self.action_dim}, z_dim={self.z_dim}{self._repr_fields()}, "
            f"training_steps={m.training_steps})"
        )
