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
@click.option("--average", type=COUNT, default=1, show_default=True,
              help="Average the weights of this many kept checkpoints, the newest up to --step "
                   "(checkpoint averaging smooths FB's checkpoint-to-checkpoint swings).")
@click.option("--weights", type=click.Choice(["auto", "online", "ema"]), default="auto",
              show_default=True,
              help="A run trained with ema_tau > 0 keeps a moving average of its weights: auto "
                   "and ema export it, online the last update's weights.")
def export(model_dir: Path, out: Path, step: int | None, inference_samples: int,
           average: int, weights: str) -> None:
    """Write a model folder from a checkpoint of a pretrain run (MODEL_DIR = its --out)."""
    from bfm_gym.pretraining import export_checkpoint

    folder = export_checkpoint(model_dir, out, step=step, inference_samples=inference_samples,
                               average=average, weights=weights)
    click.echo(f"wrote {folder}")
