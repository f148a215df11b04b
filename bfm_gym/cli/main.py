"""``bfm-gym``: the command group; every command comes from a plugin's ``register_commands`` hook.

The built-in commands (one module each in :mod:`bfm_gym.cli`: ``collect``, ``coverage``,
``pretrain``, ``eval``, ``export``, ``card``, ``plugins``, ``adapt``, ``tasks``, ``compare``,
``video``) register through that hook in :mod:`bfm_gym.builtin_plugin`, exactly like a
third-party plugin's. Each command is a thin layer over the Python API of the same name.
Commands raise errors and never catch them: :class:`bfm_gym.cli.framework.BfmGroup` turns
them into one-line messages (``-v`` or ``BFM_GYM_TRACEBACK=1`` shows the traceback), and the
option types of :mod:`bfm_gym.cli.framework` check counts, seeds and output paths.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from bfm_gym._version import __version__
from bfm_gym.cli.framework import BfmGroup, one_line_warnings


class _Cli(BfmGroup):
    """The ``bfm-gym`` group: its commands are added by the plugins' ``register_commands`` hooks,
    the built-in plugin's included, the first time they are looked up."""

    _loading = False

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        if not self._loading:
            self.load_commands()
        return self._commands

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._commands = value

    def load_commands(self) -> None:
        """Calls every plugin's ``register_commands(cli)`` once (:func:`bfm_gym.plugins.add_plugin_commands`)."""
        if self._loading:
            return
        from bfm_gym.plugins import add_plugin_commands

        self._loading = True
        try:
            add_plugin_commands(self)
        except BaseException:
            self._loading = False  # a later lookup raises the same clear error again
            raise


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bfm-gym")
@click.option("-v", "--verbose", count=True,
              help="More log output (-v info, -vv debug); errors show their traceback.")
def cli(verbose: int) -> None:
    """bfm_gym: Behavioral Foundation Models as Gymnasium environments."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def __getattr__(name: str) -> Any:
    """The command functions that lived here (``from bfm_gym.cli.main import collect``) keep working."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"bfm_gym.cli.{_MOVED[name][0]}"), _MOVED[name][1])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_MOVED = {"collect": ("collect", "collect"), "coverage": ("coverage", "coverage"),
          "pretrain": ("pretrain", "pretrain"), "eval_": ("eval", "eval_"), "export": ("export", "export"),
          "card": ("card", "card"), "plugins": ("plugins", "plugins"), "adapt": ("adapt", "adapt"),
          "tasks": ("tasks", "tasks")}


def main() -> None:
    """Console-script entry point."""
    from bfm_gym.plugins import PluginError

    one_line_warnings()
    try:
        cli.load_commands()  # type: ignore[attr-defined]
    except PluginError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    try:
        cli.main(prog_name="bfm-gym", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover
        click.echo("interrupted; rerun the same command to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
