"""``bfm-gym coverage``: recompute and show the coverage report of a dataset."""

from __future__ import annotations

from pathlib import Path

import click

from bfm_gym.cli._options import echo_coverage
from bfm_gym.cli.framework import BfmCommand


@click.command(cls=BfmCommand)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--verify/--no-verify", default=True, show_default=True, help="Check the sha256.")
def coverage(dataset: Path, verify: bool) -> None:
    """Recompute and show the coverage report of DATASET (writes coverage.json/png)."""
    from bfm_gym.data.coverage import coverage_report
    from bfm_gym.data.dataset import load_transitions

    transitions = load_transitions(dataset, verify_hash=verify)
    coverage_report(transitions, dataset)
    echo_coverage(dataset)
