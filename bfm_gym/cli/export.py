"""``bfm-gym export``: a model folder from a checkpoint of a pretrain run."""

from __future__ import annotations

from pathlib import Path

import click

from bfm_gym.cli.framework import COUNT, NONNEG, OUT_DIR, BfmCommand


@click.command(cls=BfmCommand)
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=OUT_DIR, help="New model folder.")
@click.option("--step", type=NONNEG, default=None, help="Checkpoint step (default: the newest).")
@click.option("--inference-samples", type=COUNT, default=10_000, show_default=True)
def export(model_dir: Path, out: Path, step: int | None, inference_samples: int) -> None:
    """Write a model folder from a checkpoint of a pretrain run (MODEL_DIR = its --out)."""
    from bfm_gym.pretraining import export_checkpoint

    folder = export_checkpoint(model_dir, out, step=step, inference_samples=inference_samples)
    click.echo(f"wrote {folder}")
