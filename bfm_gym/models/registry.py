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

A family that gives a ``trainer`` (a class following :class:`Trainer`) can be pre-trained with
``bfm-gym pretrain --family NAME``: :mod:`bfm_gym.pretraining` finds it here, the built-in FB and
HILP trainers exactly as a plugin's. Subclassing :class:`~bfm_gym.models.FamilyTrainer` gives
the loop, checkpoints and exact resume.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = ["Family", "Trainer", "families", "family_for_format", "load_folder", "read_format",
           "trainer_for"]


@runtime_checkable
class Trainer(Protocol):
    """What ``bfm-gym pretrain`` needs of a family's trainer class.

    ``config_class`` is a dataclass with ``preset(domain, size)`` (sizes ``paper``, ``cpu``,
    ``tiny``), ``from_dict`` (``--set`` values arrive as text), ``to_dict`` and
    ``saved_as_current(dict) -> dict`` (a saved config as this version writes it);
    :class:`~bfm_gym.models.FamilyConfig` gives all but ``preset``.

    The trainer is built as ``cls(config, obs_dim, action_dim, device, seed, metadata=...,
    threads=...)``; :meth:`train` resumes from the checkpoints it finds in ``out_dir`` and
    leaves the finished model folder in ``out_dir / "model"``. ``bfm-gym export`` also calls
    ``from_checkpoint(path, device, threads=...)`` and ``save_model(folder, replay)`` on
    checkpoints named ``out_dir / "checkpoints" / "step_<9 digits>"``.
    """

    config_class: ClassVar[type]

    @classmethod
    def replay_from(cls, transitions: Any) -> Any:
        """The replay :meth:`train` samples from, built from a dataset's
        :class:`~bfm_gym.data.dataset.Transitions`."""
        ...

    def train(self, replay: Any, num_updates: int, out_dir: Any, **kwargs: Any) -> Any:
        """Trains (resuming) to ``num_updates`` updates; returns a JSON-able history. Keyword
        arguments: ``log_every``, ``checkpoint_every``, ``keep_every``, ``eval_fn`` (model ->
        ``{metric: value}``), ``eval_every`` and ``progress``."""
        ...


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
    trainer: type | str | None = None
    """The family's :class:`Trainer` class (or ``"module:Class"``); None: its models can be
    loaded but ``bfm-gym pretrain`` cannot train them."""

    def resolve(self, name: str) -> Callable[..., Any]:
        """The callable of field ``name`` (``"load"``, ``"create"`` or ``"trainer"``), imported
        if a string."""
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


def trainer_for(name: str) -> Any:
    """The trainer class of the registered family ``name`` (``"fb"``, ``"hilp"``, a plugin's).

    Raises:
        ValueError: No family of that name, or one that registers no trainer (the message lists
            the families that can be trained).
    """
    found = families()
    trainable = ", ".join(sorted(n for n, f in found.items() if f.trainer is not None))
    family = found.get(name)
    if family is None:
        close = difflib.get_close_matches(str(name), list(found), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"No model family {name!r}.{hint} Families that can be pre-trained: {trainable}. "
            "A plugin adds one with the register_families hook (CONTRIBUTING.md); "
            "`bfm-gym plugins` lists the loaded ones."
        )
    if family.trainer is None:
        raise ValueError(
            f"The model family {name!r} registers no trainer: its models load, but pretrain "
            f"cannot train them. Families that can be pre-trained: {trainable}."
        )
    return family.resolve("trainer")


def family_for_format(fmt: str) -> tuple[str, Family]:
    """``(name, family)`` of the family whose folders have format ``fmt``.

    Raises:
        CheckpointError: No registered family reads that format.
    """
    from bfm_gym.models.checkpoint import CheckpointError

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
    from bfm_gym.models.checkpoint import CONFIG_FILE, CheckpointError, read_json

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
