"""The ``bfm-gym`` group holds no command of its own: the built-ins come through the
``register_commands`` hook of the built-in plugin, like a third-party plugin's commands."""

from __future__ import annotations

import importlib
import sys
import warnings

import click
import pytest

BUILTIN = ["adapt", "card", "collect", "compare", "coverage", "eval", "export", "plugins", "pretrain",
           "tasks", "video"]


def test_builtin_commands_come_through_the_register_commands_hook() -> None:
    from bfm_gym import builtin_plugin as builtin
    from bfm_gym.plugins import load_plugins, pm

    load_plugins()
    impls = {impl.plugin_name for impl in pm.hook.register_commands.get_hookimpls()}
    assert "bfm_gym" in impls
    group = click.Group("bare")  # an empty group filled by the built-in plugin's hook alone
    builtin.register_commands(cli=group)
    assert sorted(group.commands) == BUILTIN
    for name, command in group.commands.items():  # one module per command in bfm_gym.cli
        assert command.callback.__module__ == f"bfm_gym.cli.{name}"


def test_main_group_lists_the_hooked_commands() -> None:
    from bfm_gym.cli.main import cli

    assert sorted(cli.commands) == BUILTIN
    main = importlib.import_module("bfm_gym.cli.main")
    assert not [v for v in vars(main).values() if isinstance(v, click.Command) and v is not cli]


def test_moved_modules_keep_deprecated_aliases() -> None:
    from bfm_gym.cli.eval import run_eval
    from bfm_gym.evaluation import video

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from bfm_gym.wrappers.video import write_video
    assert write_video is video.write_video
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    sys.modules.pop("bfm_gym.evaluation.cli", None)
    with pytest.warns(DeprecationWarning, match="bfm_gym.cli.eval"):
        old = importlib.import_module("bfm_gym.evaluation.cli")
    assert old.run_eval is run_eval
