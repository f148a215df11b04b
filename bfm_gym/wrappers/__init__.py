"""Latent-action envs: a BFM's policy drives an env, an agent picks the task latent z.

* :class:`LatentActionWrapper` and :func:`wrap`: any matching Gymnasium env, action = z.
* :class:`LatentActionVectorEnv`: N inner envs, one batched policy forward per step
  (``gym.make_vec`` on the latent ids).
* :class:`DMCFlattenObservation`: flatten a shimmy dm_control env in native order.
* :func:`register_latent_envs`, :func:`latent_env_id`: ``bfm_gym/{domain}-{task}-latent-v0``.

Names are imported lazily, so importing this package (e.g. to register the ids) does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bfm_gym.wrappers.registration import latent_env_id, register_latent_envs

if TYPE_CHECKING:
    from bfm_gym.wrappers.flatten import DMCFlattenObservation
    from bfm_gym.wrappers.latent import HoldTransitions, LatentActionWrapper, wrap
    from bfm_gym.wrappers.vector import LatentActionVectorEnv

_LAZY = {
    "DMCFlattenObservation": "bfm_gym.wrappers.flatten",
    "HoldTransitions": "bfm_gym.wrappers.latent",
    "LatentActionWrapper": "bfm_gym.wrappers.latent",
    "wrap": "bfm_gym.wrappers.latent",
    "LatentActionVectorEnv": "bfm_gym.wrappers.vector",
}

__all__ = [
    "DMCFlattenObservation",
    "HoldTransitions",
    "LatentActionVectorEnv",
    "LatentActionWrapper",
    "latent_env_id",
    "register_latent_envs",
    "wrap",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bfm_gym.wrappers' has no attribute {name!r}")
