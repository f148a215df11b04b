"""Option parsing and output shared by several ``bfm-gym`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import click


def parse_set(values: tuple[str, ...]) -> dict:
    """Parses ``--set key=value`` pairs; the config dataclass parses each value by its field type."""
    from bfm_gym.config import parse_set as parse

    return parse(values)


def echo_coverage(path: Path) -> None:
    """Prints the coverage report (``coverage.json``) of the dataset folder ``path``."""
    report = json.loads((path / "coverage.json").read_text())
    click.echo(f"dataset {path}: {report['domain']}, {report['episodes']} episodes, {report['steps']} steps")
    click.echo(f"{'task':<22}{'best return':>12}{'mean return':>13}")
    for task, row in report["tasks"].items():
        click.echo(f"{task:<22}{row['best_return']:>12.1f}{row['mean_return']:>13.1f}")
    if "cells_visited_fraction" in report:
        click.echo(f"cells visited (20x20 grid): {100 * report['cells_visited_fraction']:.1f}%")
    click.echo(f"picture: {path / 'coverage.png'}")


def _count_or_word(value: str | None, word: str, option: str) -> int | str | None:
    """An integer >= 1, the literal ``word``, or unset (``None``) for ``option``."""
    if value is None or value == word:
        return value
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise click.BadParameter(f"expected an integer >= 1 or {word!r}; got {value!r}", param_hint=option)
    return count


def parse_threads(value: str) -> int | str:
    """``--threads``: ``auto`` or an integer >= 1."""
    return _count_or_word(value, "auto", "--threads")  # type: ignore[return-value]


def parse_z_hold(value: str | None) -> int | str | None:
    """``--z-hold``: an integer >= 1, ``episode`` or unset."""
    return _count_or_word(value, "episode", "--z-hold")
