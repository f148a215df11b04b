"""Saving and loading FB models as folders: ``model.safetensors`` + ``config.json``. No pickle.

Layout of a model folder (``FORMAT_VERSION`` 1)::

    <folder>/
      config.json         format, format_version, bfm_gym_version, model (FBConfig, obs/action
                          dims), fb_aware switches, spaces bounds, domain, dataset id/hash,
                          training_steps, cov info, extra
      model.safetensors   weights of B, F, pi and the ``cov`` / ``cov_samples`` buffers

A training checkpoint (written by :class:`~bfm_gym.models.fb.trainer.FBTrainer`) is a model
folder plus ``trainer.safetensors`` (targets, optimiser moments, RNG states) and
``trainer.json`` (step, optimiser hyper-parameters); it loads as a model too.

Saves are atomic: everything is written into a temporary folder next to the target, which
then replaces the target by ``os.rename``. Every loading problem raises
:class:`CheckpointError` (a ``ValueError``) naming the problem and the fix, chained (``from``)
to the underlying json/safetensors error when there is one:

=================================  =============================================================
problem                            message contains
=================================  =============================================================
no folder / a file was given       ``no folder at P; pass the folder written by BFM.save()`` /
                                   ``P is a file, not a model folder; pass its folder``
config.json / weights missing      ``config.json is missing in P; the folder is incomplete``
config.json not JSON               ``is not valid JSON (<msg> at line L column C); restore it``
config.json field missing          ``required field 'model.obs_dim' is missing``
unknown format version             ``format_version V is not supported by bfm_gym X
                                   (supported: 1); ... install that version``
invalid architecture config        ``invalid model.config (unknown FBConfig field 'zdim'; did
                                   you mean 'z_dim'?)``
truncated / corrupted weights      ``model.safetensors is truncated or corrupted (...); copy or
                                   download it again, or save the model again``
missing / extra tensors            ``missing key(s) 'k'`` / ``unexpected extra key(s) 'k'``;
                                   ``the weights do not belong to the architecture in
                                   config.json``
shape / dtype mismatch             ``shape mismatch for k (expected (a, b), found (c, d))``
NaN / inf weights                  ``tensor 'k' holds NaN or inf``
=================================  =============================================================
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bfm_gym.utils.io import write_folder_atomic

from .config import FBConfig
from .model import FBModel

__all__ = [
    "CONFIG_FILE",
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
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A model or training checkpoint cannot be read; the message names the problem and the fix."""


def library_version() -> str:
    """Version of the installed bfm_gym (``"0+unknown"`` when not installed)."""
    try:
        import bfm_gym

        version = getattr(bfm_gym, "__version__", None)
        if isinstance(version, str):
            return version
    except ImportError:  # pragma: no cover
        pass
    try:
        from importlib.metadata import PackageNotFoundError, version as dist_version

        return dist_version("bfm-gym")
    except PackageNotFoundError:
        return "0+unknown"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelMetadata:
    """What a checkpoint records besides the weights and the architecture.

    Bounds are per-dimension lists (None when unknown); ``extra`` is free-form JSON.
    """

    domain: str | None = None
    """Environment domain the model was trained on (e.g. "walker")."""
    dataset_id: str | None = None
    """Identifier of the training dataset (e.g. "exorl/walker/rnd")."""
    dataset_hash: str | None = None
    """Fingerprint of the training arrays (:meth:`OfflineReplay.fingerprint`)."""
    training_steps: int = 0
    """Gradient updates behind these weights."""
    obs_low: list[float] | None = None
    """Observation space lower bounds."""
    obs_high: list[float] | None = None
    """Observation space upper bounds."""
    action_low: list[float] | None = None
    """Action space lower bounds of the environment (the model acts in [-1, 1])."""
    action_high: list[float] | None = None
    """Action space upper bounds of the environment."""
    bfm_gym_version: str | None = None
    """Library version that wrote the checkpoint (filled in on save)."""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Anything else JSON-serialisable."""

    def __post_init__(self) -> None:
        for name in ("obs_low", "obs_high", "action_low", "action_high"):
            value = getattr(self, name)
            if value is not None:
                try:
                    bounds = [float(v) for v in _flat(value)]
                except (TypeError, ValueError) as err:
                    raise ValueError(
                        f"ModelMetadata.{name} must be a sequence of numbers, got {value!r}"
                    ) from err
                if any(math.isnan(v) for v in bounds):
                    raise ValueError(f"ModelMetadata.{name} holds NaN")
                object.__setattr__(self, name, bounds)
        object.__setattr__(self, "training_steps", int(self.training_steps))

    def replace(self, **changes: Any) -> ModelMetadata:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _flat(value: Any) -> list[Any]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    return [value]


def _bounds_to_json(bounds: list[float] | None) -> list[float | str] | None:
    """JSON has no infinity: +-inf are written as the strings "inf" / "-inf"."""
    if bounds is None:
        return None
    return [("inf" if v > 0 else "-inf") if math.isinf(v) else v for v in bounds]


def _bounds_from_json(bounds: Any, where: Path, name: str) -> list[float] | None:
    if bounds is None:
        return None
    try:
        return [float(v) for v in bounds]
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{where}: spaces.{name} must be a list of numbers or 'inf'/'-inf', found {bounds!r}; save the model again"
        ) from err


# ------------------------------------------------------------------------------------------------
# low-level helpers
# ------------------------------------------------------------------------------------------------


def read_json(file: Path, what: str) -> dict[str, Any]:
    """Parse a JSON object, raising :class:`CheckpointError` for a missing, unreadable or invalid file."""
    if not file.is_file():
        raise CheckpointError(
            f"{what}: {file.name} is missing in {file.parent}; the folder is incomplete, save it again"
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{what}: {file} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}); "
            "restore it from the original checkpoint or save the model again"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{what}: cannot read {file} ({err}); check the file and its permissions"
        ) from err
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{what}: {file} must hold a JSON object, found {type(data).__name__}; save the model again"
        )
    return data


def read_safetensors(file: Path, what: str) -> dict[str, torch.Tensor]:
    """Load a safetensors file on CPU, raising :class:`CheckpointError` if missing, truncated or corrupted."""
    if not file.is_file():
        raise CheckpointError(
            f"{what}: {file.name} is missing in {file.parent}; the folder is incomplete, save it again"
        )
    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{what}: {file} is truncated or corrupted ({type(err).__name__}: {err}); "
            "copy or download it again, or save the model again"
        ) from err


def write_safetensors(file: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write tensors (CPU, contiguous copies) to a safetensors file."""
    save_file(
        {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()},
        str(file),
        metadata={"format": "pt"},
    )


def _write_json(file: Path, data: Mapping[str, Any]) -> None:
    file.write_text(
        json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8"
    )


def _require(data: Mapping[str, Any], dotted: str, where: Path) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise CheckpointError(
                f"{where}: required field {dotted!r} is missing; the file is not a bfm_gym model config "
                "(or was edited by hand): save the model again with bfm_gym"
            )
        node = node[part]
    return node


def _check_state(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], file: Path
) -> None:
    """Same keys and shapes, else :class:`CheckpointError` listing the differences."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    fix = "the weights do not belong to the architecture in config.json; keep the two files of one save together"
    if missing:
        raise CheckpointError(f"{file}: missing key(s) {_few(missing)}; {fix}")
    if extra:
        raise CheckpointError(f"{file}: unexpected extra key(s) {_few(extra)}; {fix}")
    bad = [
        f"{k} (expected {tuple(expected[k].shape)}, found {tuple(found[k].shape)})"
        for k in expected
        if expected[k].shape != found[k].shape
    ]
    if bad:
        raise CheckpointError(f"{file}: shape mismatch for {_few(bad)}; {fix}")
    wrong_dtype = [
        f"{k} (expected {expected[k].dtype}, found {found[k].dtype})"
        for k in expected
        if expected[k].dtype != found[k].dtype
    ]
    if wrong_dtype:
        raise CheckpointError(f"{file}: dtype mismatch for {_few(wrong_dtype)}; {fix}")


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(i) if " (" not in i else i for i in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


# ------------------------------------------------------------------------------------------------
# model folders
# ------------------------------------------------------------------------------------------------


def model_config_json(model: FBModel, metadata: ModelMetadata) -> dict[str, Any]:
    """The ``config.json`` content for ``model``."""
    c = model.config
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bfm_gym_version": library_version(),
        "model": {"config": c.to_dict(), "obs_dim": model.obs_dim, "action_dim": model.action_dim},
        "fb_aware": {"ar_blocks": c.ar_blocks, "actor_loss": c.actor_loss},
        "spaces": {
            "obs_low": _bounds_to_json(metadata.obs_low),
            "obs_high": _bounds_to_json(metadata.obs_high),
            "action_low": _bounds_to_json(metadata.action_low),
            "action_high": _bounds_to_json(metadata.action_high),
        },
        "domain": metadata.domain,
        "dataset": {"id": metadata.dataset_id, "hash": metadata.dataset_hash},
        "training_steps": int(metadata.training_steps),
        "cov": {
            "finalized": bool(model.cov_samples.item() > 0),
            "samples": int(model.cov_samples.item()),
        },
        "extra": dict(metadata.extra),
    }


def write_model_files(folder: Path, model: FBModel, metadata: ModelMetadata) -> None:
    """Write ``config.json`` and ``model.safetensors`` into an existing (temporary) folder."""
    _write_json(folder / CONFIG_FILE, model_config_json(model, metadata))
    write_safetensors(folder / WEIGHTS_FILE, model.state_dict())


def save_model(
    model: FBModel, path: str | os.PathLike[str], metadata: ModelMetadata | None = None
) -> Path:
    """Atomically save ``model`` as a folder (``config.json`` + ``model.safetensors``).

    Args:
        model: The model (any device; weights are written from CPU copies).
        path: Target folder; replaced if it exists.
        metadata: Domain, dataset, spaces bounds, training steps.

    Returns:
        The folder path.
    """
    path = Path(path)
    with write_folder_atomic(path) as tmp:
        write_model_files(tmp, model, metadata or ModelMetadata())
    return path


def _check_folder(path: Path, what: str) -> None:
    if not path.exists():
        raise CheckpointError(
            f"{what}: no folder at {path}; pass the folder written by BFM.save() or FBTrainer.train() "
            f"(it holds {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    if not path.is_dir():
        hint = (
            f"; pass its folder {path.parent}" if path.name in (CONFIG_FILE, WEIGHTS_FILE) else ""
        )
        raise CheckpointError(f"{what}: {path} is a file, not a model folder{hint}")


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[FBModel, ModelMetadata]:
    """Load a model folder written by :func:`save_model`, validating everything.

    Args:
        path: The folder.
        device: Where to put the weights.

    Returns:
        ``(model, metadata)``; the model is in eval mode with ``requires_grad=False``.

    Raises:
        CheckpointError: Missing folder/file, invalid or incomplete ``config.json``, unsupported
            format version, truncated/corrupted weights, missing/extra keys or shape mismatch.
    """
    path = Path(path)
    what = "cannot load FB model"
    _check_folder(path, what)
    cfg_file = path / CONFIG_FILE
    data = read_json(cfg_file, what)
    fmt = _require(data, "format", cfg_file)
    if fmt != FORMAT_NAME:
        raise CheckpointError(
            f"{cfg_file}: format {fmt!r} is not {FORMAT_NAME!r}; this folder holds another kind of model"
        )
    version = _require(data, "format_version", cfg_file)
    if version not in SUPPORTED_FORMAT_VERSIONS:
        writer = data.get("bfm_gym_version", "an unknown version")
        raise CheckpointError(
            f"{cfg_file}: format_version {version!r} is not supported by bfm_gym {library_version()} "
            f"(supported: {', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}); it was written by bfm_gym {writer}: "
            "install that version (or newer) of bfm_gym to load it"
        )
    raw_config = _require(data, "model.config", cfg_file)
    obs_dim = _require(data, "model.obs_dim", cfg_file)
    action_dim = _require(data, "model.action_dim", cfg_file)
    for name, value in (("model.obs_dim", obs_dim), ("model.action_dim", action_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(
                f"{cfg_file}: {name} must be a positive int, found {value!r}; save the model again"
            )
    try:
        config = FBConfig.from_dict(raw_config)
    except (ValueError, TypeError) as err:
        raise CheckpointError(
            f"{cfg_file}: invalid model.config ({err}); save the model again with this bfm_gym version"
        ) from err
    spaces = data.get("spaces") or {}
    dataset = data.get("dataset") or {}
    metadata = ModelMetadata(
        domain=data.get("domain"),
        dataset_id=dataset.get("id"),
        dataset_hash=dataset.get("hash"),
        training_steps=int(data.get("training_steps") or 0),
        obs_low=_bounds_from_json(spaces.get("obs_low"), cfg_file, "obs_low"),
        obs_high=_bounds_from_json(spaces.get("obs_high"), cfg_file, "obs_high"),
        action_low=_bounds_from_json(spaces.get("action_low"), cfg_file, "action_low"),
        action_high=_bounds_from_json(spaces.get("action_high"), cfg_file, "action_high"),
        bfm_gym_version=data.get("bfm_gym_version"),
        extra=dict(data.get("extra") or {}),
    )
    weights_file = path / WEIGHTS_FILE
    state = read_safetensors(weights_file, what)
    with torch.random.fork_rng(devices=[]):  # the throw-away init must not touch the caller's RNG
        model = FBModel(config, obs_dim, action_dim)
    _check_state(model.state_dict(), state, weights_file)
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(
                f"{weights_file}: tensor {k!r} holds NaN or inf; the model diverged or the file is corrupted"
            )
    model.load_state_dict(state)
    model.to(device).train(False).requires_grad_(False)
    return model, metadata


# ------------------------------------------------------------------------------------------------
# optimiser state <-> (tensors, JSON)
# ------------------------------------------------------------------------------------------------


def flatten_optimizer_state(
    optimizer: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``{prefix}.state.{i}.{name}``) and JSON.

    Returns:
        ``(tensors, json_part)``; :func:`unflatten_optimizer_state` inverts it.
    """
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.state.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
        for g in sd["param_groups"]
    ]
    for g in groups:
        for k, v in g.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(
                    f"optimizer {prefix}: param group field {k}={v} is not JSON-serialisable"
                )
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer_state(
    tensors: Mapping[str, torch.Tensor], json_part: Mapping[str, Any], prefix: str
) -> dict[str, Any]:
    """Rebuild a state dict for ``optimizer.load_state_dict`` from :func:`flatten_optimizer_state` output."""
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for key, value in tensors.items():
        if key.startswith(head):
            idx, name = key[len(head) :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in json_part.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in g.items()}
        for g in json_part["param_groups"]
    ]
    return {"state": state, "param_groups": groups}
