"""The FB family's entry in the model registry: ``load(folder, device)`` reads a model folder
(``config.json`` format ``"bfm_gym.fb"``), ``create(obs_dim, action_dim, *, domain, size, seed,
**overrides)`` builds an untrained model (see :class:`~bfm_gym.models._handle.FamilyHandle`)."""

from __future__ import annotations

from .handle import FBHandle

__all__ = ["create", "load"]

load = FBHandle.load
create = FBHandle.create
