"""Model families by ``config.json`` format; :func:`load_folder` dispatches on it.

A family is registered through the ``register_families`` plugin hook (bfm_gym's own FB and
HILP through the built-in plugin, exactly as a third party would)::

    @hookimpl
    def register_families(register):
        register("my-family", Family(format="my_pkg.my_family", load="my_pkg.family:load",
                                     create="my_pkg.family:create"))

``load(folder, device)`` returns a :class:`~bfm_gym.models.protocol.BFM`; ``create(obs_dim,
action_dim, *, domain, size, seed)`` builds an untrained one of a preset size (``"tiny"`` is
what the test-suite runs every adapter and wrapper on, for every registered family).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Family", "families", "family_for_format", "load_folder", "read_format"]


@dataclass(frozen=True, kw_only=True)
class Family:
    """How to load and build the models of one family.

    Callables may be given as ``"module:function"`` strings, imported on first use (so that
    registering a family stays cheap).
    """

    format: str
    """Value of ``config.json["format"]`` in this family's model folders."""
    load: Callable[..., Any] | str
    """``load(folder: Path, device: str) -> BFM``."""
    create: Callable[..., Any] | str | None = None
    """``create(obs_dim, action_dim, *, domain, size="tiny", seed=0) -> BFM`` (untrained)."""
    description: str = ""
    """One line for ``bfm-gym plugins``."""

    def resolve(self, name: str) -> Callable[..., Any]:
        """The callable of field ``name`` (``"load"`` or ``"create"``), imported if a string."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"model family {self.format!r} gives no {name} function")
        if isinstance(value, str):
            from bfm_gym.utils.imports import resolve_callable

            return resolve_callable(value, what=f"model family {self.format!r}: {name}")
        return value


def families() -> dict[str, Family]:
    """Registered families by name (``"fb"``, ``"hilp"``, plugins' ones)."""
    from bfm_gym.plugins import load_plugins

    return {name: family for name, (family, _plugin) in load_plugins().families.items()}


def family_for_format(fmt: str) -> tuple[str, Family]:
    """``(name, family)`` of the family whose folders have format ``fmt``.

    Raises:
        CheckpointError: No registered family reads that format.
    """
    from bfm_gym.models.fb.checkpoint import CheckpointError

    found = families()
    matches = [(name, family) for name, family in found.items() if family.format == fmt]
    if len(matches) > 1:
        names = " and ".join(repr(n) for n, _ in matches)
        raise CheckpointError(
            f"model format {fmt!r} is claimed by the families {names}; disable one of their "
            "plugins with BFM_GYM_LOAD_PLUGINS."
        )
    if matches:
        return matches[0]
    known = sorted(f.format for f in found.values())
    close = difflib.get_close_matches(str(fmt), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise CheckpointError(
        f"model format {fmt!r} is not a registered model family (known: {', '.join(known)}).{hint} "
        "Install the plugin that provides it (`bfm-gym plugins` lists the loaded ones)."
    )


def read_format(folder: str | os.PathLike[str]) -> str:
    """``config.json["format"]`` of a model folder.

    Raises:
        CheckpointError: No folder, no or invalid config.json, or no ``format`` field.
    """
    from bfm_gym.models.fb.checkpoint import CONFIG_FILE, CheckpointError, read_json

    path = Path(folder)
    what = "cannot load model"
    if not path.is_dir():
        raise CheckpointError(f"{what}: no folder at {path}; pass a model folder (it holds {CONFIG_FILE})")
    data = read_json(path / CONFIG_FILE, what)
    fmt = data.get("format")
    if not isinstance(fmt, str):
        raise CheckpointError(
            f"{path / CONFIG_FILE}: no 'format' field naming the model family; save the model again"
        )
    return fmt


def load_folder(folder: str | os.PathLike[str], device: str = "cpu") -> Any:
    """Loads a model folder with the family its ``config.json`` names.

    The handle's ``source`` is set to the folder, so its shipped inference samples are
    attached (``bfm.samples``) and wrappers can record a rebuildable spec.
    """
    _name, family = family_for_format(read_format(folder))
    bfm = family.resolve("load")(Path(folder), device)
    from bfm_gym.models.inference import INFERENCE_FILE, InferenceSet

    try:
        if getattr(bfm, "source", None) is None:
            bfm.source = str(folder)
        if getattr(bfm, "samples", None) is None and (Path(folder) / INFERENCE_FILE).is_file():
            bfm.samples = InferenceSet.load(folder)  # a plugin handle that does not attach them
    except AttributeError:  # a plugin handle with read-only attributes
        pass
    return bfm
