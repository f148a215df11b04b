"""Model folders of every family: ``config.json`` + ``model.safetensors``. No pickle.

Layout of a model folder (``format_version`` 1)::

    <folder>/
      config.json         format (the family, e.g. "bfm_gym.fb"), format_version,
                          bfm_gym_version, model (config, obs/action dims), the family's own
                          fields, spaces bounds, domain, dataset id/hash, training_steps, extra
      model.safetensors   the model's state dict (weights and buffers)

A training checkpoint (written by a family trainer,
:class:`~bfm_gym.models._trainer.FamilyTrainer`) is a model folder plus
``trainer.safetensors`` (targets, optimiser moments, RNG states) and ``trainer.json`` (step,
optimiser hyper-parameters); it loads as a model too.

Saves are atomic: everything is written into a temporary folder next to the target, which
then replaces the target by ``os.rename``. A family describes its folders with one
:class:`ModelFolder` (format name, model and config classes, its own ``config.json`` fields);
every loading problem raises :class:`CheckpointError` (a ``ValueError``) naming the problem
and the fix, chained (``from``) to the underlying json/safetensors error when there is one:

=================================  =============================================================
problem                            message contains
=================================  =============================================================
no folder / a file was given       ``no folder at P; pass the folder written by BFM.save()`` /
                                   ``P is a file, not a model folder; pass its folder``
config.json / weights missing      ``config.json is missing in P; the folder is incomplete``
config.json not JSON               ``is not valid JSON (<msg> at line L column C); restore it``
config.json field missing          ``required field 'model.obs_dim' is missing``
another family's folder            ``format 'bfm_gym.hilp' is not 'bfm_gym.fb'``
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bfm_gym._version import __version__
from bfm_gym.utils.io import write_folder_atomic

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "CheckpointError",
    "ModelFolder",
    "ModelMetadata",
    "flatten_optimizer_state",
    "library_version",
    "read_json",
    "read_safetensors",
    "unflatten_optimizer_state",
    "write_folder_atomic",
    "write_safetensors",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A model or training checkpoint cannot be read; the message names the problem and the fix."""


def library_version() -> str:
    """This bfm_gym's version (written into checkpoints and model folders)."""
    return __version__


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
    for what, show in (("shape", tuple), ("dtype", str)):
        bad = [
            f"{k} (expected {show(getattr(v, what))}, found {show(getattr(found[k], what))})"
            for k, v in expected.items()
            if getattr(v, what) != getattr(found[k], what)
        ]
        if bad:
            raise CheckpointError(f"{file}: {what} mismatch for {_few(bad)}; {fix}")


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(i) if " (" not in i else i for i in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


# ------------------------------------------------------------------------------------------------
# model folders
# ------------------------------------------------------------------------------------------------

_BOUNDS = ("obs_low", "obs_high", "action_low", "action_high")


@dataclasses.dataclass(frozen=True)
class ModelFolder:
    """How one family writes and reads its model folders.

    Args:
        format_name: ``config.json["format"]`` (e.g. ``"bfm_gym.fb"``).
        label: The family's name in messages (``"FB"``).
        model_class: ``model_class(config, obs_dim, action_dim)`` builds an untrained model
            (an ``nn.Module`` with ``config``, ``obs_dim``, ``action_dim``).
        config_class: Has ``from_dict`` (the inverse of the config's ``to_dict``).
        model_fields: The family's own ``config.json`` fields, written after ``"model"``.
        state_fields: Fields describing buffers, written after ``"training_steps"``.
        supported_versions: ``format_version`` values this library reads.
        format_version: The version written.
    """

    format_name: str
    label: str
    model_class: Callable[..., Any]
    config_class: Any
    model_fields: Callable[[Any], dict[str, Any]] = lambda model: {}
    state_fields: Callable[[Any], dict[str, Any]] = lambda model: {}
    supported_versions: tuple[int, ...] = (1,)
    format_version: int = 1

    def config_json(self, model: Any, metadata: ModelMetadata) -> dict[str, Any]:
        """The ``config.json`` content for ``model``."""
        return {
            "format": self.format_name,
            "format_version": self.format_version,
            "bfm_gym_version": library_version(),
            "model": {
                "config": model.config.to_dict(),
                "obs_dim": model.obs_dim,
                "action_dim": model.action_dim,
            },
            **self.model_fields(model),
            "spaces": {name: _bounds_to_json(getattr(metadata, name)) for name in _BOUNDS},
            "domain": metadata.domain,
            "dataset": {"id": metadata.dataset_id, "hash": metadata.dataset_hash},
            "training_steps": int(metadata.training_steps),
            **self.state_fields(model),
            "extra": dict(metadata.extra),
        }

    def write_files(self, folder: Path, model: Any, metadata: ModelMetadata) -> None:
        """Write ``config.json`` and ``model.safetensors`` into an existing (temporary) folder."""
        _write_json(folder / CONFIG_FILE, self.config_json(model, metadata))
        write_safetensors(folder / WEIGHTS_FILE, model.state_dict())

    def save(
        self, model: Any, path: str | os.PathLike[str], metadata: ModelMetadata | None = None
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
            self.write_files(tmp, model, metadata or ModelMetadata())
        return path

    def load(
        self, path: str | os.PathLike[str], device: str | torch.device = "cpu"
    ) -> tuple[Any, ModelMetadata]:
        """Load a model folder written by :meth:`save`, validating everything.

        Args:
            path: The folder.
            device: Where to put the weights.

        Returns:
            ``(model, metadata)``; the model is in eval mode with ``requires_grad=False``.

        Raises:
            CheckpointError: Missing folder/file, invalid or incomplete ``config.json``, another
                format or an unsupported version, truncated/corrupted weights, missing/extra
                keys, shape mismatch or NaN.
        """
        path = Path(path)
        what = f"cannot load {self.label} model"
        _check_folder(path, what)
        cfg_file = path / CONFIG_FILE
        data = read_json(cfg_file, what)
        fmt = _require(data, "format", cfg_file)
        if fmt != self.format_name:
            raise CheckpointError(
                f"{cfg_file}: format {fmt!r} is not {self.format_name!r}; this folder holds another kind "
                "of model (bfm_gym.load picks the right family)"
            )
        version = _require(data, "format_version", cfg_file)
        if version not in self.supported_versions:
            writer = data.get("bfm_gym_version", "an unknown version")
            raise CheckpointError(
                f"{cfg_file}: format_version {version!r} is not supported by bfm_gym {library_version()} "
                f"(supported: {', '.join(map(str, self.supported_versions))}); it was written by bfm_gym {writer}: "
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
            config = self.config_class.from_dict(raw_config)
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
            bfm_gym_version=data.get("bfm_gym_version"),
            extra=dict(data.get("extra") or {}),
            **{name: _bounds_from_json(spaces.get(name), cfg_file, name) for name in _BOUNDS},
        )
        weights_file = path / WEIGHTS_FILE
        state = read_safetensors(weights_file, what)
        with torch.random.fork_rng(devices=[]):  # the throw-away init must not touch the caller's RNG
            model = self.model_class(config, obs_dim, action_dim)
        _check_state(model.state_dict(), state, weights_file)
        for k, v in state.items():
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise CheckpointError(
                    f"{weights_file}: tensor {k!r} holds NaN or inf; the model diverged or the file is corrupted"
                )
        model.load_state_dict(state)
        model.to(device).train(False).requires_grad_(False)
        return model, metadata


def _check_folder(path: Path, what: str) -> None:
    if not path.exists():
        raise CheckpointError(
            f"{what}: no folder at {path}; pass the folder written by a model's save() or bfm-gym pretrain "
            f"(it holds {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    if not path.is_dir():
        hint = (
            f"; pass its folder {path.parent}" if path.name in (CONFIG_FILE, WEIGHTS_FILE) else ""
        )
        raise CheckpointError(f"{what}: {path} is a file, not a model folder{hint}")


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
