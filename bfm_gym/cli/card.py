"""``bfm-gym card``: evaluate a model on every task of its domain and write its model card."""

from __future__ import annotations

from pathlib import Path

import click

from bfm_gym.cli.framework import COUNT, SEED, BfmCommand


@click.command(cls=BfmCommand)
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--episodes", type=COUNT, default=10, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--command", "train_command", default="(not recorded)",
              help="The training command to record in the card.")
@click.option("--dataset-command", default="(not recorded)", help="The data collection command.")
@click.option("--wall-time", default="(not recorded)", help="Training wall time to record.")
@click.option("--notes", "notes_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A Markdown file appended to the card (how the run went, limits).")
@click.option("--gradient-check", is_flag=True,
              help="Also test, per task, whether turning z along F's value gradient raises the "
                   "real return (what a gradient adapter such as ReLA climbs; "
                   "bfm_gym.evaluation.gradient_check).")
@click.option("--gradient-seeds", type=click.IntRange(min=2), default=10, show_default=True,
              help="Paired start states per latent of the gradient check (at least 2: its "
                   "intervals are over paired differences).")
def card(model_dir: Path, episodes: int, seed: int, train_command: str, dataset_command: str,
         wall_time: str, notes_file: Path | None, gradient_check: bool, gradient_seeds: int) -> None:
    """Evaluate MODEL_DIR on every task of its domain; write MODEL_CARD.md + zero_shot.json."""
    from bfm_gym.evaluation.report import gradient_check_report, write_model_card, zero_shot_report

    report = zero_shot_report(model_dir, episodes=episodes, seed=seed)
    if gradient_check:
        report["gradient_check"] = gradient_check_report(model_dir, seeds=gradient_seeds, seed=seed)
    notes = notes_file.read_text() if notes_file else ""
    path = write_model_card(model_dir, report, command=train_command,
                            dataset_command=dataset_command, wall_time=wall_time, notes=notes)
    for task, row in report["tasks"].items():
        click.echo(f"{task:<22}{row['mean']:>9.1f}  [{row['ci95'][0]:.1f}, {row['ci95'][1]:.1f}]")
    for task, row in report.get("gradient_check", {}).items():
        click.echo(f"{task:<22}F's gradient: {row['verdict']} (F predicts "
                   f"{100 * row['f_predicted_gain'][0]:+.1f} %, measured {100 * row['gain'][0]:+.1f} % "
                   f"at {row['degrees'][0]:g} degrees)")
    click.echo(f"mean over tasks {report['mean_over_tasks']:.1f}; wrote {path}")
