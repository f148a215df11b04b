"""FB model folders (format ``"bfm_gym.fb"``): the generic layout and checks of
:mod:`bfm_gym.models.checkpoint` plus FB's own ``config.json`` fields, ``fb_aware``
(``ar_blocks``, ``actor_loss``) and ``cov`` (``finalized``, ``samples``); the weights hold B, F,
pi and the ``cov`` / ``cov_samples`` buffers.

The generic names (:class:`CheckpointError`, :class:`ModelMetadata`, the JSON / safetensors /
optimiser-state helpers) are re-exported here, where code written before the second family
imports them from.
"""

from __future__ import annotations

from ..checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    ModelFolder,
    ModelMetadata,
    flatten_optimizer_state,
    library_version,
    read_json,
    read_safetensors,
    unflatten_optimizer_state,
    write_folder_atomic,
    write_safetensors,
)
from .config import FBConfig
from .model import FBModel

__all__ = [
    "CONFIG_FILE",
    "FOLDER",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "CheckpointError",
    "ModelMetadata",
    "flatten_optimizer_state",
    "library_version",
    "load_model",
    "read_json",
    "read_safetensors",
    "save_model",
    "unflatten_optimizer_state",
    "write_folder_atomic",
    "write_model_files",
    "write_safetensors",
]

FORMAT_NAME = "bfm_gym.fb"
"""Value of ``config.json["format"]``."""
FORMAT_VERSION = 1
"""Current ``config.json["format_version"]``."""
SUPPORTED_FORMAT_VERSIONS = (1,)
"""Versions this library reads."""

FOLDER = ModelFolder(
    format_name=FORMAT_NAME,
    label="FB",
    model_class=FBModel,
    config_class=FBConfig,
    model_fields=lambda m: {
        "fb_aware": {"ar_blocks": m.config.ar_blocks, "actor_loss": m.config.actor_loss}
    },
    state_fields=lambda m: {
        "cov": {"finalized": bool(m.cov_samples.item() > 0), "samples": int(m.cov_samples.item())}
    },
    supported_versions=SUPPORTED_FORMAT_VERSIONS,
    format_version=FORMAT_VERSION,
)
"""How FB model folders are written and read."""


load_model = FOLDER.load
"""``load_model(path, device="cpu") -> (FBModel, ModelMetadata)``: :meth:`ModelFolder.load`."""
save_model = FOLDER.save
"""``save_model(model, path, metadata=None) -> Path``: :meth:`ModelFolder.save`."""
write_model_files = FOLDER.write_files
"""``write_model_files(folder, model, metadata)``: :meth:`ModelFolder.write_files`."""
