"""User errors: how bfm_gym reports a mistake in what it was asked to do.

A *user error* is a mistake the user can fix: an unknown name, a value of the wrong
type, a count below its minimum, an output path that is a file, a folder that is not
what it claims to be. It is raised as :class:`UserError` (a ``ValueError``, so
``except ValueError`` keeps working) whose message names the problem, what was
expected, and the fix, on one line. The ``bfm-gym`` command line prints it as
``Error: <message>`` and exits with status 1, never with a traceback (``bfm-gym -v``
or ``BFM_GYM_TRACEBACK=1`` shows the traceback for debugging); see
:mod:`bfm_gym.cli.framework`.

The helpers here are the shared checks of every command and boundary function:

* :func:`check_count`: an integer count with a minimum (``episodes >= 1``);
* :func:`check_out_dir` / :func:`check_out_file`: an output path that can be created;
* :func:`unknown_name`: the error for a name not in a registry, with the closest one.

Example:
    >>> check_count("episodes", 3)
    3
    >>> check_count("episodes", 0)
    Traceback (most recent call last):
    ...
    bfm_gym.errors.UserError: episodes must be an integer >= 1; got 0.
    >>> str(unknown_name("adapter", "optii", ["lola", "opti", "rela"]))
    "Unknown adapter 'optii' (did you mean 'opti'?); registered adapters: lola, opti, rela."
"""

from __future__ import annotations

import difflib
import numbers
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "USER_ERRORS",
    "UserError",
    "check_count",
    "check_device",
    "check_out_dir",
    "check_out_file",
    "check_own_folder",
    "closest_hint",
    "is_user_error",
    "reward_error",
    "unknown_name",
]


class UserError(ValueError):
    """A mistake in the user's input; the message names it and the fix, on one line."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, OSError, ImportError)
"""Exception types that describe a mistake in the input or the environment (a missing
file, a folder that exists, a module that does not import), not a bug of bfm_gym. The
command line prints them as ``Error: <message>`` (exit 1); any other exception is
reported as an unexpected error (exit 70) with how to get its traceback."""


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` reports a user mistake (see :data:`USER_ERRORS`)."""
    return isinstance(exc, USER_ERRORS)


def closest_hint(name: str, valid: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for a misspelt ``name``, or ``""`` when nothing is close."""
    match = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def unknown_name(kind: str, name: str, valid: Iterable[str], *, plural: str | None = None,
                 fix: str = "") -> UserError:
    """The error for ``name`` not being a registered ``kind``.

    Args:
        kind: What the name should be (``"adapter"``).
        name: What the user gave.
        valid: The registered names.
        plural: Plural of ``kind`` (default ``kind + "s"``).
        fix: An extra sentence (e.g. how to register one).

    Returns:
        A :class:`UserError` listing the valid names with the closest one first.
    """
    names = sorted(str(v) for v in valid)
    message = (f"Unknown {kind} {name!r}{closest_hint(name, names)}; registered {plural or kind + 's'}: "
               f"{', '.join(names) if names else '(none)'}.")
    return UserError(message + (f" {fix}" if fix else ""))


def check_count(name: str, value: object, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """Checks that ``value`` is an integer >= ``minimum`` (bools are refused).

    Args:
        name: The argument's name as the user wrote it (``"episodes"``, ``"--episodes"``).
        value: The value given.
        minimum: The smallest valid value.
        allow_none: Accept None (an optional count); returned as is.

    Returns:
        ``value`` as an int (or None).

    Raises:
        UserError: Not an integer, or below ``minimum``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_device(device: object, *, allow_auto: bool = False) -> object:
    """Checks that torch knows ``device`` and this machine has it (``"auto"`` passes if allowed).

    Raises:
        UserError: Not a torch device string, or CUDA requested where torch cannot use it.
    """
    if allow_auto and device == "auto":
        return device
    import torch

    try:
        dev = torch.device(device)  # type: ignore[call-overload]
    except (RuntimeError, TypeError) as exc:
        raise UserError(f"device {device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'"
                        + (" (or 'auto')." if allow_auto else ".")) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} needs CUDA, which this torch {torch.__version__} cannot use "
                        "(no GPU, or a CPU-only build); use device='cpu'.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s).")
    return device


def check_own_folder(path: str | os.PathLike[str], markers: Iterable[str], what: str, *,
                     consequence: str) -> None:
    """Refuses to write into, or delete, a non-empty folder that bfm_gym did not make.

    A folder that does not exist, is empty, or holds one of ``markers`` (files bfm_gym
    writes first, e.g. ``run.json``) passes. Anything else is a folder of the user's
    (a typo in ``--out``, ``--out .``), whose files must not be overwritten or removed.

    Args:
        path: The output folder.
        markers: Relative paths, one of which a folder of this kind holds.
        what: What such a folder is (``"adapt run folder"``).
        consequence: What would happen to it (``"--overwrite would delete it"``).

    Raises:
        UserError: A non-empty folder without any marker.
    """
    folder = Path(path)
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    markers = list(markers)
    if any((folder / m).exists() for m in markers):
        return
    raise UserError(f"{folder} is not empty and is not a bfm_gym {what} (it has no {' or '.join(markers)}); "
                    f"{consequence}: choose a new or empty folder.")


def _blocking_ancestor(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` if it is not a folder (then ``path`` cannot be made)."""
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_out_dir(path: str | os.PathLike[str], name: str = "out") -> Path:
    """Checks that ``path`` is an existing folder or can be created as one.

    Args:
        path: The output folder.
        name: The argument's name for the message (``"--out"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        UserError: ``path`` is an existing file, or one of its parents is a file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise UserError(f"{name} must be a folder path; got {type(path).__name__} {path!r}.")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{name} {str(folder)!r} is an existing file, not a folder; give a folder path "
                        "(it is created if missing).")
    blocker = _blocking_ancestor(folder)
    if blocker is not None:
        raise UserError(f"{name} {str(folder)!r} cannot be created: {str(blocker)!r} is a file.")
    return folder


def check_out_file(path: str | os.PathLike[str], name: str = "out") -> Path:
    """Checks that ``path`` can be written as a file (not a folder, parents creatable).

    Raises:
        UserError: ``path`` is an existing folder, or one of its parents is a file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise UserError(f"{name} must be a file path; got {type(path).__name__} {path!r}.")
    file = Path(path)
    if file.is_dir():
        raise UserError(f"{name} {str(file)!r} is a folder; give a file path.")
    blocker = _blocking_ancestor(file)
    if blocker is not None:
        raise UserError(f"{name} {str(file)!r} cannot be created: {str(blocker)!r} is a file.")
    return file


def reward_error(task: object, exc: BaseException, call: str) -> UserError:
    """The error for a task's reward function that raised (or returned a non-number).

    Args:
        task: The :class:`~bfm_gym.envs.tasks.Task` (``domain``, ``name``, ``reward``).
        exc: What the call raised.
        call: How it was called, e.g. ``"fn(physics) after env step 12"``.

    Returns:
        A :class:`UserError` naming the function, the task and the call; raise it ``from exc``
        so that ``BFM_GYM_TRACEBACK=1`` shows where the function failed.
    """
    fn = getattr(task, "reward", None)
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    name = f"{module}:{qualname}" if module and qualname else repr(fn)
    label = f"{getattr(task, 'domain', '?')}/{getattr(task, 'name', '?')}"
    return UserError(f"reward function {name} of task {label} failed when called as {call}: "
                     f"{type(exc).__name__}: {exc}. Fix the function (a task is fn(physics) -> float "
                     "on the simulator state); BFM_GYM_TRACEBACK=1 shows where it failed.")
