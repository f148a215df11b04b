"""``bfm-gym pretrain``: pre-train a model on datasets (resumable)."""

from __future__ import annotations

from pathlib import Path

import click

from bfm_gym.cli._options import parse_set, parse_threads
from bfm_gym.cli.framework import COUNT, DEVICE, NONNEG, OUT_DIR, SEED, BfmCommand


@click.command(cls=BfmCommand, resumable=True)
@click.option("--dataset", "datasets", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Dataset folder (bfm-gym collect), Minari dataset folder, or the name of a "
                   "Minari dataset present locally (nothing is downloaded); repeat to mix "
                   "datasets of one domain.")
@click.option("--config", default="cpu", show_default=True,
              help="Preset (paper, cpu, tiny) or a JSON file of the family's config fields "
                   "(FBConfig for fb).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="A config field of the family, e.g. --set ar_blocks=2 --set actor_loss=awr (fb).")
@click.option("--out", required=True, type=OUT_DIR, help="Model folder.")
@click.option("--updates", type=COUNT, default=100_000, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--device", type=DEVICE, default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--eval-every", type=NONNEG, default=10_000, show_default=True,
              help="Updates between zero-shot evaluations (0: none).")
@click.option("--eval-episodes", type=COUNT, default=2, show_default=True)
@click.option("--checkpoint-every", type=COUNT, default=5_000, show_default=True)
@click.option("--keep-every", type=NONNEG, default=0, show_default=True,
              help="Keep checkpoints at multiples of this step for `bfm-gym export --step` (0: newest two only).")
@click.option("--inference-samples", type=COUNT, default=10_000, show_default=True,
              help="Dataset next-states shipped with the model for z inference.")
@click.option("--threads", default="auto", show_default=True, help="torch threads (auto: free cores).")
@click.option("--overwrite", is_flag=True, help="Discard a previous run in --out.")
@click.option("--no-progress", is_flag=True)
@click.option("--family", default="fb", show_default=True, metavar="NAME",
              help="Model family to train: fb (FB / FB-AWARE), hilp, or a plugin's family that "
                   "registers a trainer (`bfm-gym plugins` lists them); --config/--set then "
                   "take that family's fields.")
@click.option("--init-from", metavar="MODEL", default=None,
              help="Continue pre-training MODEL (a folder or shipped name of this family and "
                   "architecture): its weights start the run, the optimisers start afresh, and "
                   "--updates counts on from its training steps.")
def pretrain(datasets: tuple[Path, ...], config: str, overrides: tuple[str, ...], out: Path, updates: int,
             seed: int, device: str, eval_every: int, eval_episodes: int, checkpoint_every: int,
             keep_every: int, inference_samples: int, threads: str, overwrite: bool, no_progress: bool,
             family: str, init_from: str | None) -> None:
    """Pre-train a model (FB by default) on datasets (rerun to resume after an interruption)."""
    from bfm_gym.pretraining import pretrain as run

    path = run(list(datasets), out, config=config, overrides=parse_set(overrides), updates=updates,
               seed=seed, device=device, eval_every=eval_every, eval_episodes=eval_episodes,
               checkpoint_every=checkpoint_every, keep_every=keep_every,
               inference_samples=inference_samples,
               threads=parse_threads(threads),
               progress=not no_progress, overwrite=overwrite, family=family, init_from=init_from)
    click.echo(f"model written to {path} (TensorBoard: tensorboard --logdir {path / 'training' / 'tb'})")
