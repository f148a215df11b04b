"""The FB family's entry in the model registry: load a folder, build an untrained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoint import ModelMetadata
from .config import FBConfig
from .handle import FBHandle
from .model import FBModel

__all__ = ["create", "load"]


def load(folder: Path, device: str = "cpu") -> FBHandle:
    """:meth:`FBHandle.load` (``config.json`` format ``"bfm_gym.fb"``)."""
    return FBHandle.load(folder, device=device)


def create(obs_dim: int, action_dim: int, *, domain: str = "walker", size: str = "tiny",
           seed: int = 0, **overrides: Any) -> FBHandle:
    """An untrained FB model of preset ``size`` (weights seeded by ``seed``)."""
    config = FBConfig.preset(domain, size, **overrides)  # type: ignore[arg-type]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FBModel(config, obs_dim, action_dim)
    return FBHandle(model, ModelMetadata(domain=domain))
