"""The one place where ``bfm-gym`` turns errors into messages, and the shared option types.

Every command (built-in or from a plugin) runs inside :class:`BfmGroup.invoke`, which
catches what the command raises:

* a user error (:data:`bfm_gym.errors.USER_ERRORS`: :class:`~bfm_gym.errors.UserError`,
  ``ValueError``, ``OSError``, ``ImportError``) -> ``Error: <message>`` on one line,
  exit status 1;
* any other exception (a bug) -> ``Error: <message> (<Type>; unexpected: ...)``,
  exit status 70, with how to see the traceback;
* Ctrl-C -> ``Interrupted`` plus, for commands that resume (``resumable=True``), the
  resume hint; exit status 130.

``bfm-gym -v ...`` or ``BFM_GYM_TRACEBACK=1`` re-raises instead, showing the traceback.
So a command raises errors with a good message and never catches them itself; option
values are checked by the click types below (counts, seeds, output paths) before the
command runs, and ``--set`` values by the config dataclass they set
(:func:`bfm_gym.config.parse_set`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import click

from bfm_gym.errors import UserError, check_device, check_out_dir, check_out_file, is_user_error

__all__ = [
    "COUNT",
    "DEVICE",
    "NONNEG",
    "OUT_DIR",
    "OUT_FILE",
    "SEED",
    "BfmCommand",
    "BfmGroup",
    "UnexpectedError",
    "UserFacingError",
    "one_line_warnings",
    "set_option",
]

COUNT = click.IntRange(min=1)
"""An integer >= 1 (episodes, steps, updates)."""
NONNEG = click.IntRange(min=0)
"""An integer >= 0 (``0`` meaning "none" or "off")."""
SEED = click.IntRange(min=0)
"""A seed: an integer >= 0 (NumPy's ``SeedSequence`` refuses negative ones)."""

INTERRUPT_EXIT = 130
UNEXPECTED_EXIT = 70


class _OutPath(click.Path):
    """An output path, checked with :func:`bfm_gym.errors.check_out_dir`/``check_out_file``."""

    def __init__(self, kind: str) -> None:
        super().__init__(path_type=Path)
        self.kind = kind
        self.name = "folder" if kind == "dir" else "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        check = check_out_dir if self.kind == "dir" else check_out_file
        try:
            return check(path, name="path")
        except UserError as exc:
            self.fail(str(exc).removeprefix("path "), param, ctx)


OUT_DIR = _OutPath("dir")
"""An output folder: existing or creatable; an existing file is refused before the command runs."""
OUT_FILE = _OutPath("file")
"""An output file: not an existing folder; its parents creatable."""


class _Device(click.ParamType):
    """A torch device (``cpu``, ``cuda``, ``cuda:N``) or ``auto``, checked before the command runs."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return check_device(value, allow_auto=True)
        except UserError as exc:
            self.fail(str(exc), param, ctx)


DEVICE = _Device()
"""``auto``, ``cpu``, ``cuda`` or ``cuda:N``; a device torch does not know or cannot use is refused."""


def set_option(help_text: str, metavar: str = "KEY=VALUE") -> Any:
    """The ``--set KEY=VALUE`` option (repeatable) of a command with a config dataclass."""
    return click.option("--set", "overrides", multiple=True, metavar=metavar, help=help_text)


class RegistryHelpOption(click.Option):
    """An option whose help lists a plugin registry's entries when help is shown (``--domain``
    names the registered domains, plugins' included), so no help text keeps a list by hand.

    ``help`` is a format string with ``{names}``; ``names()`` returns the entries.
    """

    def __init__(self, *args: Any, names: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._names = names
        self._help_format = self.help or "{names}"

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        try:
            names = ", ".join(sorted(self._names()))
        except Exception:  # a broken plugin must not break --help
            names = "see `bfm-gym plugins`"
        self.help = self._help_format.format(names=names)
        return super().get_help_record(ctx)


class UserFacingError(click.ClickException):
    """A user error as click prints it: ``Error: <message>``, exit status 1."""


class UnexpectedError(click.ClickException):
    """An exception that is not a user error (a bug): one line, exit status 70."""

    exit_code = UNEXPECTED_EXIT


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = repr(exc.args[0])
    return text or type(exc).__name__


def _show_traceback(ctx: click.Context) -> bool:
    return bool(ctx.params.get("verbose")) or os.environ.get("BFM_GYM_TRACEBACK", "") not in ("", "0")


class BfmCommand(click.Command):
    """A ``bfm-gym`` command; ``resumable=True`` adds the resume hint to Ctrl-C.

    Args:
        resumable: Whether rerunning the same command continues an interrupted run.
    """

    def __init__(self, *args: Any, resumable: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resumable = resumable


class BfmGroup(click.Group):
    """The ``bfm-gym`` group: runs every subcommand under one error handler (module docstring)."""

    command_class = BfmCommand

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            if _show_traceback(ctx):
                raise
            command = self.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
            hint = ("; finished work is kept: rerun the same command to resume"
                    if getattr(command, "resumable", False) else "")
            click.echo(f"Interrupted{hint}.", err=True)
            raise click.exceptions.Exit(INTERRUPT_EXIT) from None
        except Exception as exc:
            if _show_traceback(ctx):
                raise
            if is_user_error(exc):
                raise UserFacingError(_message(exc)) from exc
            raise UnexpectedError(
                f"{_message(exc)} ({type(exc).__name__}; unexpected: rerun with -v or "
                "BFM_GYM_TRACEBACK=1 for the traceback and report it if it is a bug)"
            ) from exc


def _format_warning(message: Any, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    return f"Warning: {message}\n"


def one_line_warnings() -> None:
    """Shows Python warnings as ``Warning: <message>`` lines (no source line) in the CLI."""
    warnings.formatwarning = _format_warning  # type: ignore[assignment]
