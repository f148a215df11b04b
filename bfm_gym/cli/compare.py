"""``bfm-gym compare``: adapters x tasks x seeds at equal budgets (see :mod:`bfm_gym.experiments.compare`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from bfm_gym.cli.framework import COUNT, OUT_DIR, BfmCommand


def _parse_oracle(values: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values:
        task, sep, raw = item.partition("=")
        try:
            if not sep or not task.strip():
                raise ValueError
            out[task.strip()] = float(raw)
        except ValueError:
            raise click.BadParameter(f"expected TASK=VALUE (e.g. walker-run=800), got {item!r}",
                                     param_hint="--oracle") from None
    return out


def _parse_ints(value: str | None, hint: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint=hint) from None


@click.command(cls=BfmCommand, resumable=True)
@click.option("--model", "model_names", required=True, multiple=True,
              help="Shipped model name or model folder; repeat to compare models side by side "
                   "(--model walker --model runs/walker-hilp: one sub-folder each, families.md).")
@click.option("--tasks", required=True,
              help="Comma-separated tasks, e.g. walker-run,walker-walk. With several --model, a task "
                   "with a domain prefix goes to that domain's models, one without to every model.")
@click.option("--adapters", required=True, help="Comma-separated registered adapters (plugins included).")
@click.option("--seeds", default="5", show_default=True, help="Number of seeds (0..N-1) or a list 0,3,7.")
@click.option("--episodes", type=COUNT, default=50, show_default=True,
              help="Episodes per cell; budget = episodes x episode length env steps.")
@click.option("--out", required=True, type=OUT_DIR, help="Output folder (resumable).")
@click.option("--workers", type=COUNT, default=None, help="Parallel cells (default: min(cpus, cells)).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (--executor ray).")
@click.option("--set", "overrides", multiple=True, metavar="ADAPTER.KEY=VALUE",
              help="Adapter config field, e.g. --set opti.beta=0.2.")
@click.option("--max-episode-steps", type=COUNT, default=None, help="Cap episode length (quick runs).")
@click.option("--max-labels", type=COUNT, default=None,
              help="Cap on online reward labels per cell (default: the env-step budget).")
@click.option("--oracle", "oracles", multiple=True, metavar="TASK=VALUE",
              help="Oracle return of a task (default: the zero-shot return with dataset labels).")
@click.option("--checkpoints", default=None, help="Budgets in episodes for the aggregates, e.g. 10,20,50.")
@click.option("--bootstrap-reps", type=COUNT, default=2000, show_default=True)
@click.option("--score-window", type=click.IntRange(min=1), default=1, show_default=True,
              help="Without paired evaluation: score a cell by the mean of its last K training episodes.")
@click.option("--eval-episodes", type=click.IntRange(min=0), default=5, show_default=True,
              help="Fixed start states per evaluation point, shared by all adapters of a seed "
                   "(0: score training returns).")
@click.option("--eval-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Extra evaluation points every K episodes of budget, for the curves (0: checkpoints only).")
@click.option("--tune", "tunes", multiple=True, metavar="lr=V1,V2|ADAPTER.KEY=V1,V2",
              help="Tuning budget: lr=1e-4,3e-4,1e-3 gives every adapter with a learning rate that grid "
                   "(lola.lr, rela.lr_z, SB3 learning_rate); ADAPTER.KEY=... one adapter a grid over any field. "
                   "Each adapter is reported at its best setting (area under its evaluation curve).")
@click.option("--select-seeds", default=None,
              help="Seeds (none of --seeds) on which --tune chooses each setting, e.g. 100,101 "
                   "(default: choose on --seeds).")
@click.option("--no-progress", is_flag=True)
@click.option("--status", is_flag=True,
              help="Run nothing: say per adapter which cells of OUT are finished, part-way or not "
                   "started, and which setting each tuned adapter has chosen (a grid run in pieces).")
def compare(model_names: tuple[str, ...], tasks: str, adapters: str, seeds: str, episodes: int, out: Path,
            workers: int | None, executor: str, address: str | None, overrides: tuple[str, ...],
            max_episode_steps: int | None, max_labels: int | None, oracles: tuple[str, ...],
            checkpoints: str | None, bootstrap_reps: int, score_window: int, eval_episodes: int,
            eval_every: int, tunes: tuple[str, ...], select_seeds: str | None, no_progress: bool,
            status: bool) -> None:
    """Compare adapters on tasks and seeds at equal env-step and label budgets.

    Rerun the same command to resume: finished cells are skipped, interrupted ones
    continue after their last finished episode.
    """
    from bfm_gym.experiments.compare import compare as run, parse_overrides
    from bfm_gym.experiments.compare.tuning import parse_tune

    seed_list = _parse_ints(seeds, "--seeds") or []
    seed_arg: int | list[int] = seed_list[0] if len(seed_list) == 1 and "," not in seeds else seed_list
    options = dict(seeds=seed_arg, episodes=episodes, workers=workers, executor=executor, address=address,
                   config=parse_overrides(overrides), max_episode_steps=max_episode_steps,
                   max_labels=max_labels, oracle=_parse_oracle(oracles),
                   checkpoints=_parse_ints(checkpoints, "--checkpoints"), bootstrap_reps=bootstrap_reps,
                   score_window=score_window, eval_episodes=eval_episodes, eval_every=eval_every,
                   tune=parse_tune(tunes), select_seeds=_parse_ints(select_seeds, "--select-seeds"),
                   progress=not no_progress, command=_plugins_prefix() + shlex.join(["bfm-gym", *sys.argv[1:]]))
    if status:
        if len(model_names) > 1:
            raise click.UsageError("--status reads one comparison: give one --model (each model of a "
                                   "side-by-side comparison has its own sub-folder of --out).")
        from bfm_gym.experiments.compare.status import format_status, grid_status

        click.echo(format_status(grid_status(model_names[0], tasks, adapters, out, **options)))
        return
    if len(model_names) > 1:  # one comparison per model, then the models side by side
        from bfm_gym.experiments.families import compare_models

        results = compare_models(model_names, tasks, adapters, out=out, **options)
        for label, res in results.items():
            click.echo(f"== {res.spec.model} -> {out / label}: {', '.join(res.spec.tasks)}")
            _print_result(res)
        click.echo(f"adapters x models: {out / 'families.md'}")
        return
    _print_result(run(model_names[0], tasks, adapters, out=out, **options))  # type: ignore[arg-type]


def _print_result(res: Any) -> None:
    """The final IQM per adapter and where the report is."""
    from bfm_gym.experiments.compare.tuning import adapter_names

    final = res.aggregates["checkpoints"][-1]
    names = adapter_names(res.spec.adapters, res.aggregates)
    width = max(22, *(len(n) + 2 for n in names.values()))
    click.echo(f"{'adapter':<{width}}{'IQM score/zero-shot [95% CI]':>34}")
    for adapter in res.spec.adapters:
        iv = final["adapters"][adapter]["zero_shot"]["iqm"]
        click.echo(f"{names[adapter]:<{width}}{iv['value']:>14.3f} [{iv['low']:.3f}, {iv['high']:.3f}]")
    ran = sum(c["status"] == "ran" for c in res.cells)
    click.echo(f"{ran} cells ran, {len(res.cells) - ran} reused; report: {res.out / 'report.md'}")


def _plugins_prefix() -> str:
    """``BFM_GYM_LOAD_PLUGINS=... `` when set, so the recorded command loads the same plugins."""
    import os
    import shlex

    value = os.environ.get("BFM_GYM_LOAD_PLUGINS")
    return "" if value is None else f"BFM_GYM_LOAD_PLUGINS={shlex.quote(value)} "
