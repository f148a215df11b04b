"""Behavioural foundation models. The FB family lives in :mod:`bfm_gym.models.fb`."""

from .fb import (
    BFM,
    CheckpointError,
    FBConfig,
    FBModel,
    FBTrainer,
    ModelMetadata,
    OfflineReplay,
    load_model,
    save_model,
)

__all__ = [
    "BFM",
    "CheckpointError",
    "FBConfig",
    "FBModel",
    "FBTrainer",
    "ModelMetadata",
    "OfflineReplay",
    "load_model",
    "save_model",
]
