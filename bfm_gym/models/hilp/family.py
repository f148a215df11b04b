"""The HILP family's entry in the model registry: load a folder, build an untrained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bfm_gym.models.fb.checkpoint import ModelMetadata

from .config import HILPConfig
from .handle import HILPHandle
from .model import HILPModel

__all__ = ["create", "load"]


def load(folder: Path, device: str = "cpu") -> HILPHandle:
    """:meth:`HILPHandle.load` (``config.json`` format ``"bfm_gym.hilp"``)."""
    return HILPHandle.load(folder, device=device)


def create(obs_dim: int, action_dim: int, *, domain: str = "walker", size: str = "tiny",
           seed: int = 0, **overrides: Any) -> HILPHandle:
    """An untrained HILP model of preset ``size`` (weights seeded by ``seed``)."""
    config = HILPConfig.preset(domain, size, **overrides)  # type: ignore[arg-type]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HILPModel(config, obs_dim, action_dim)
    return HILPHandle(model, ModelMetadata(domain=domain))
