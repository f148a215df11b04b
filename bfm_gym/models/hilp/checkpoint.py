"""Saving and loading HILP models as folders: ``model.safetensors`` + ``config.json``. No pickle.

The layout and the guarantees are FB's (:mod:`bfm_gym.models.fb.checkpoint`): atomic writes,
a versioned ``config.json`` whose ``"format"`` is ``"bfm_gym.hilp"``, the config validated on
load (unknown fields name the closest one), every tensor's key, shape, dtype and finiteness
checked, and every problem raised as :class:`~bfm_gym.models.fb.checkpoint.CheckpointError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from bfm_gym.models.fb.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    ModelMetadata,
    _bounds_from_json,
    _bounds_to_json,
    _check_folder,
    _check_state,
    _require,
    _write_json,
    library_version,
    read_json,
    read_safetensors,
    write_folder_atomic,
    write_safetensors,
)

from .config import HILPConfig
from .model import HILPModel

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_model", "save_model", "write_model_files"]

FORMAT_NAME = "bfm_gym.hilp"
"""Value of ``config.json["format"]``."""
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)


def model_config_json(model: HILPModel, metadata: ModelMetadata) -> dict[str, Any]:
    """The ``config.json`` content for ``model``."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bfm_gym_version": library_version(),
        "model": {"config": model.config.to_dict(), "obs_dim": model.obs_dim,
                  "action_dim": model.action_dim},
        "spaces": {name: _bounds_to_json(getattr(metadata, name))
                   for name in ("obs_low", "obs_high", "action_low", "action_high")},
        "domain": metadata.domain,
        "dataset": {"id": metadata.dataset_id, "hash": metadata.dataset_hash},
        "training_steps": int(metadata.training_steps),
        "extra": dict(metadata.extra),
    }


def write_model_files(folder: Path, model: HILPModel, metadata: ModelMetadata) -> None:
    """Write ``config.json`` and ``model.safetensors`` into an existing (temporary) folder."""
    _write_json(folder / CONFIG_FILE, model_config_json(model, metadata))
    write_safetensors(folder / WEIGHTS_FILE, model.state_dict())


def save_model(model: HILPModel, path: str | os.PathLike[str],
               metadata: ModelMetadata | None = None) -> Path:
    """Atomically save ``model`` as a folder; returns its path."""
    path = Path(path)
    with write_folder_atomic(path) as tmp:
        write_model_files(tmp, model, metadata or ModelMetadata())
    return path


def load_model(path: str | os.PathLike[str],
               device: str | torch.device = "cpu") -> tuple[HILPModel, ModelMetadata]:
    """Load a folder written by :func:`save_model`, validating everything.

    Raises:
        CheckpointError: Missing folder/file, invalid or incomplete ``config.json``, another
            format or an unsupported version, corrupted weights, wrong keys/shapes, NaN.
    """
    path = Path(path)
    what = "cannot load HILP model"
    _check_folder(path, what)
    cfg_file = path / CONFIG_FILE
    data = read_json(cfg_file, what)
    fmt = _require(data, "format", cfg_file)
    if fmt != FORMAT_NAME:
        raise CheckpointError(f"{cfg_file}: format {fmt!r} is not {FORMAT_NAME!r}; this folder "
                              "holds another kind of model (bfm_gym.load picks the right family)")
    version = _require(data, "format_version", cfg_file)
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise CheckpointError(
            f"{cfg_file}: format_version {version!r} is not supported by bfm_gym "
            f"{library_version()} (supported: 1); install the bfm_gym version that wrote it "
            f"({data.get('bfm_gym_version', 'unknown')}) or newer")
    obs_dim = _require(data, "model.obs_dim", cfg_file)
    action_dim = _require(data, "model.action_dim", cfg_file)
    for name, value in (("model.obs_dim", obs_dim), ("model.action_dim", action_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(f"{cfg_file}: {name} must be a positive int, found {value!r}; "
                                  "save the model again")
    try:
        config = HILPConfig.from_dict(_require(data, "model.config", cfg_file))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{cfg_file}: invalid model.config ({err}); save the model again "
                              "with this bfm_gym version") from err
    spaces = data.get("spaces") or {}
    dataset = data.get("dataset") or {}
    metadata = ModelMetadata(
        domain=data.get("domain"),
        dataset_id=dataset.get("id"),
        dataset_hash=dataset.get("hash"),
        training_steps=int(data.get("training_steps") or 0),
        bfm_gym_version=data.get("bfm_gym_version"),
        extra=dict(data.get("extra") or {}),
        **{name: _bounds_from_json(spaces.get(name), cfg_file, name)
           for name in ("obs_low", "obs_high", "action_low", "action_high")},
    )
    weights_file = path / WEIGHTS_FILE
    state = read_safetensors(weights_file, what)
    with torch.random.fork_rng(devices=[]):
        model = HILPModel(config, obs_dim, action_dim)
    _check_state(model.state_dict(), state, weights_file)
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{weights_file}: tensor {k!r} holds NaN or inf; the model "
                                  "diverged or the file is corrupted")
    model.load_state_dict(state)
    model.to(device).train(False).requires_grad_(False)
    return model, metadata
