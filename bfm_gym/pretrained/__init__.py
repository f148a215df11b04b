"""Pre-trained models shipped with bfm_gym, and ``load(name_or_path)``.

Shipped models live in sub-folders of this package (``walker/``, ...), each with a
``MODEL_CARD.md`` recording the command, data, hardware and zero-shot results.
Plugins can add named models with the ``register_models`` hook.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any


def shipped_models() -> dict[str, Path]:
    """Names of the models available offline (shipped here or registered by plugins
    through ``register_models``), mapped to their folders."""
    from bfm_gym.plugins import load_plugins

    return {name: Path(path) for name, (path, _plugin) in load_plugins().models.items()}


def register_model(name: str, path: str | os.PathLike[str]) -> None:
    """Makes ``load(name)`` open the model folder ``path``, replacing a model of that name
    (from code; plugins use the ``register_models`` hook). It joins the plugin registry."""
    from bfm_gym.plugins import load_plugins

    load_plugins().models[name] = (Path(path), "register_model")


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """Finds the model folder for a shipped name or a path.

    A path may be the model folder itself or a training run holding ``model/``.

    Raises:
        ValueError: Neither a shipped name nor a model folder; lists the names.
    """
    models = shipped_models()
    if str(name_or_path) in models:
        return models[str(name_or_path)]
    path = Path(name_or_path)
    if (path / "config.json").is_file():
        return path
    if (path / "model" / "config.json").is_file():
        return path / "model"
    names = ", ".join(sorted(models)) or "(none shipped yet)"
    close = difflib.get_close_matches(str(name_or_path), list(models), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"No model {str(name_or_path)!r}: not a shipped model and not a folder with config.json."
        f"{hint} Shipped models: {names}."
    )


def load(name_or_path: str | os.PathLike[str], device: str = "cpu") -> Any:
    """Loads a BFM of any registered family by shipped name (``"walker"``) or folder path.

    The folder's ``config.json`` ``"format"`` picks the family (:mod:`bfm_gym.models.registry`);
    the returned handle follows :class:`bfm_gym.models.protocol.BFM` and carries the folder's
    inference samples (``bfm.samples``).

    Raises:
        UserError: Not a name or path, or a device this machine does not have.
        ValueError: Unknown name (the message lists shipped models).
        CheckpointError: The folder is incomplete, corrupt or of an unregistered format.
    """
    from bfm_gym.errors import UserError, check_device
    from bfm_gym.models.registry import load_folder

    if not isinstance(name_or_path, (str, os.PathLike)):
        raise UserError(f"bfm_gym.load needs a shipped model name (e.g. 'walker') or a model folder; "
                        f"got {type(name_or_path).__name__} {name_or_path!r}.")
    check_device(device)
    return load_folder(resolve(name_or_path), device=device)
