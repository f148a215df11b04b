"""``bfm-gym plugins``: the loaded plugins as JSON."""

from __future__ import annotations

import json

import click

from bfm_gym.cli.framework import BfmCommand


@click.command(cls=BfmCommand)
@click.option("--hook", default=None, help="Only plugins implementing this hook.")
def plugins(hook: str | None) -> None:
    """List loaded plugins as JSON: version, hooks, what each registered, errors."""
    from dataclasses import asdict

    from bfm_gym.errors import closest_hint
    from bfm_gym.plugins import hookspecs, plugin_infos

    hooks = sorted(n for n in dir(hookspecs) if n.startswith("register_"))
    if hook is not None and hook not in hooks:
        raise click.BadParameter(f"no hook {hook!r}{closest_hint(hook, hooks)}; hooks: {', '.join(hooks)}",
                                 param_hint="--hook")
    rows = [asdict(p) for p in plugin_infos() if hook is None or hook in p.hooks]
    click.echo(json.dumps(rows, indent=2))
