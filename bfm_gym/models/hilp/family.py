"""The HILP family's entry in the model registry: ``load(folder, device)`` reads a model folder
(``config.json`` format ``"bfm_gym.hilp"``), ``create(obs_dim, action_dim, *, domain, size,
seed, **overrides)`` builds an untrained model (see :class:`~bfm_gym.models._handle.FamilyHandle`)."""

from __future__ import annotations

from .handle import HILPHandle

__all__ = ["create", "load"]

load = HILPHandle.load
create = HILPHandle.create
