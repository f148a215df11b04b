"""``bfm-gym``: collect data, inspect domains and tasks (more commands per concept).

Each command is a thin layer over the Python API of the same name. Commands raise
errors and never catch them: :class:`bfm_gym.cli.framework.BfmGroup` turns them into
one-line messages (``-v`` or ``BFM_GYM_TRACEBACK=1`` shows the traceback), and the
option types of :mod:`bfm_gym.cli.framework` check counts, seeds and output paths.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from bfm_gym import __version__
from bfm_gym.cli.framework import COUNT, DEVICE, NONNEG, OUT_DIR, OUT_FILE, SEED, BfmGroup, one_line_warnings


def _parse_set(values: tuple[str, ...]) -> dict:
    """Parses ``--set key=value`` pairs; the config dataclass parses each value by its field type."""
    from bfm_gym.config import parse_set

    return parse_set(values)


@click.group(cls=BfmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bfm-gym")
@click.option("-v", "--verbose", count=True,
              help="More log output (-v info, -vv debug); errors show their traceback.")
def cli(verbose: int) -> None:
    """bfm_gym: Behavioral Foundation Models as Gymnasium environments."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@cli.command(resumable=True)
@click.option("--domain", default=None, help="walker, cheetah, quadruped or point_mass_maze.")
@click.option("--env", "env_id", default=None, metavar="ID",
              help="Instead of --domain: any registered Gymnasium id with a Box action space "
                   "(e.g. Hopper-v5, dm_control/walker-walk-v0).")
@click.option("--env-kwargs", default=None, metavar="JSON", help="gym.make keyword arguments (with --env).")
@click.option("--max-episode-steps", type=COUNT, default=None,
              help="Episode cap with --env (default: the id's own, else 1000).")
@click.option("--agent", default="rnd", show_default=True, help="Collector agent: random, ou, rnd.")
@click.option("--steps", type=COUNT, default=None, help="Env steps (rounded up to 1000-step episodes).")
@click.option("--episodes", type=COUNT, default=None, help="Number of 1000-step episodes.")
@click.option("--out", required=True, type=OUT_DIR, help="Output dataset folder.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Agent config field.")
@click.option("--chunk-episodes", type=COUNT, default=10, show_default=True,
              help="Episodes per checkpoint (resume granularity).")
@click.option("--threads", type=COUNT, default=1, show_default=True, help="torch threads.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def collect(domain: str | None, env_id: str | None, env_kwargs: str | None,
            max_episode_steps: int | None, agent: str, steps: int | None, episodes: int | None,
            out: Path, seed: int, overrides: tuple[str, ...], chunk_episodes: int, threads: int,
            overwrite: bool, no_progress: bool) -> None:
    """Collect a Minari dataset (resumes an interrupted run): reward-free data of a bfm_gym
    domain, or data of any Gymnasium env (--env) with its own rewards and terminations."""
    from bfm_gym.data.collection import collect as run

    if steps is None and episodes is None:
        raise click.UsageError("Give --steps N or --episodes N.")
    if (domain is None) == (env_id is None):
        raise click.UsageError("Give --domain NAME (a bfm_gym domain) or --env ID (a Gymnasium id).")
    kwargs = None
    if env_kwargs is not None:
        try:
            kwargs = json.loads(env_kwargs)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc}); e.g. '{{\"frame_skip\": 4}}'",
                                     param_hint="--env-kwargs") from exc
        if not isinstance(kwargs, dict):
            raise click.BadParameter("expected a JSON object of keyword arguments", param_hint="--env-kwargs")
    path = run(domain or env_id, out, agent=agent, steps=steps, episodes=episodes, seed=seed,  # type: ignore[arg-type]
               agent_config=_parse_set(overrides), chunk_episodes=chunk_episodes,
               overwrite=overwrite, progress=not no_progress, threads=threads,
               env_kwargs=kwargs, max_episode_steps=max_episode_steps)
    _echo_coverage(path)


@cli.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--verify/--no-verify", default=True, show_default=True, help="Check the sha256.")
def coverage(dataset: Path, verify: bool) -> None:
    """Recompute and show the coverage report of DATASET (writes coverage.json/png)."""
    from bfm_gym.data.coverage import coverage_report
    from bfm_gym.data.dataset import load_transitions

    transitions = load_transitions(dataset, verify_hash=verify)
    coverage_report(transitions, dataset)
    _echo_coverage(dataset)


def _echo_coverage(path: Path) -> None:
    report = json.loads((path / "coverage.json").read_text())
    click.echo(f"dataset {path}: {report['domain']}, {report['episodes']} episodes, {report['steps']} steps")
    click.echo(f"{'task':<22}{'best return':>12}{'mean return':>13}")
    for task, row in report["tasks"].items():
        click.echo(f"{task:<22}{row['best_return']:>12.1f}{row['mean_return']:>13.1f}")
    if "maze_cells_visited_fraction" in report:
        click.echo(f"maze cells visited (20x20 grid): {100 * report['maze_cells_visited_fraction']:.1f}%")
    click.echo(f"picture: {path / 'coverage.png'}")


@cli.command(resumable=True)
@click.option("--dataset", "datasets", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Dataset folder (bfm-gym collect), Minari dataset folder, or the name of a "
                   "Minari dataset present locally (nothing is downloaded); repeat to mix "
                   "datasets of one domain.")
@click.option("--config", default="cpu", show_default=True,
              help="Preset (paper, cpu, tiny) or a JSON file of FBConfig fields.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="FBConfig field, e.g. --set ar_blocks=2 --set actor_loss=awr.")
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
@click.option("--family", type=click.Choice(["fb", "hilp"]), default="fb", show_default=True,
              help="Model family to train (--config/--set then take that family's fields).")
def pretrain(datasets: tuple[Path, ...], config: str, overrides: tuple[str, ...], out: Path, updates: int,
             seed: int, device: str, eval_every: int, eval_episodes: int, checkpoint_every: int,
             keep_every: int, inference_samples: int, threads: str, overwrite: bool, no_progress: bool,
             family: str) -> None:
    """Pre-train an FB model on a dataset (rerun to resume after an interruption)."""
    from bfm_gym.pretraining import pretrain as run

    path = run(list(datasets), out, config=config, overrides=_parse_set(overrides), updates=updates,
               seed=seed, device=device, eval_every=eval_every, eval_episodes=eval_episodes,
               checkpoint_every=checkpoint_every, keep_every=keep_every,
               inference_samples=inference_samples,
               threads=_threads(threads),
               progress=not no_progress, overwrite=overwrite, family=family)
    click.echo(f"model written to {path} (TensorBoard: tensorboard --logdir {path / 'training' / 'tb'})")


@cli.command(name="eval")
@click.option("--model", "model_name", required=True, help="Shipped model name or model folder.")
@click.option("--task", default=None, help="Task, as 'run' or 'walker-run'.")
@click.option("--goal", default=None, help="Goal position 'x,y' (point_mass_maze).")
@click.option("--reward", default=None, metavar="MODULE:FUNCTION",
              help="A reward fn(physics) -> float to evaluate instead of a shipped task.")
@click.option("--episodes", type=COUNT, default=10, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--dataset", type=click.Path(path_type=Path), default=None,
              help="Infer z from this dataset instead of the model's shipped samples.")
@click.option("--json", "json_out", type=OUT_FILE, default=None,
              help="Write the result as JSON here.")
def eval_(model_name: str, task: str | None, goal: str | None, reward: str | None,
          episodes: int, seed: int, dataset: Path | None, json_out: Path | None) -> None:
    """Zero-shot return of a model on a task: mean with a 95% interval."""
    from bfm_gym.evaluation.cli import run_eval

    result = run_eval(model_name, task=task, goal=goal, reward=reward, episodes=episodes,
                      seed=seed, dataset=dataset)
    lo, hi = result.ci95
    click.echo(f"{result.task}: mean return {result.mean:.1f} (95% CI {lo:.1f} to {hi:.1f}) "
               f"over {episodes} episodes")
    if json_out is not None:
        from bfm_gym.utils.io import write_json_atomic

        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(json_out, result.to_dict(), sort_keys=True)
        click.echo(f"wrote {json_out}")


@cli.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=OUT_DIR, help="New model folder.")
@click.option("--step", type=NONNEG, default=None, help="Checkpoint step (default: the newest).")
@click.option("--inference-samples", type=COUNT, default=10_000, show_default=True)
def export(model_dir: Path, out: Path, step: int | None, inference_samples: int) -> None:
    """Write a model folder from a checkpoint of a pretrain run (MODEL_DIR = its --out)."""
    from bfm_gym.pretraining import export_checkpoint

    folder = export_checkpoint(model_dir, out, step=step, inference_samples=inference_samples)
    click.echo(f"wrote {folder}")


@cli.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--episodes", type=COUNT, default=10, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--command", "train_command", default="(not recorded)",
              help="The training command to record in the card.")
@click.option("--dataset-command", default="(not recorded)", help="The data collection command.")
@click.option("--wall-time", default="(not recorded)", help="Training wall time to record.")
@click.option("--notes", "notes_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A Markdown file appended to the card (how the run went, limits).")
def card(model_dir: Path, episodes: int, seed: int, train_command: str, dataset_command: str,
         wall_time: str, notes_file: Path | None) -> None:
    """Evaluate MODEL_DIR on every task of its domain; write MODEL_CARD.md + zero_shot.json."""
    from bfm_gym.evaluation.report import write_model_card, zero_shot_report

    report = zero_shot_report(model_dir, episodes=episodes, seed=seed)
    notes = notes_file.read_text() if notes_file else ""
    path = write_model_card(model_dir, report, command=train_command,
                            dataset_command=dataset_command, wall_time=wall_time, notes=notes)
    for task, row in report["tasks"].items():
        click.echo(f"{task:<22}{row['mean']:>9.1f}  [{row['ci95'][0]:.1f}, {row['ci95'][1]:.1f}]")
    click.echo(f"mean over tasks {report['mean_over_tasks']:.1f}; wrote {path}")


@cli.command()
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


@cli.command(resumable=True)
@click.option("--model", "model_name", required=True, help="Shipped model name or model folder.")
@click.option("--task", default=None, help="Task, as 'run' or 'walker-run'.")
@click.option("--goal", default=None, help="Goal 'x,y' instead of a task (point_mass_maze).")
@click.option("--adapter", default="opti", show_default=True, help="Registered adapter name.")
@click.option("--episodes", type=COUNT, default=50, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", type=OUT_DIR, required=True, help="Run folder (resumable).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Adapter config field.")
@click.option("--z-hold", default=None, help="Low-level steps per latent (int or 'episode').")
@click.option("--eval-every", type=NONNEG, default=5, show_default=True,
              help="Every K episodes (and after the last), score z frozen on fixed start states (0: never).")
@click.option("--eval-episodes", type=NONNEG, default=5, show_default=True,
              help="Fixed start states per evaluation point, shared with the zero-shot level.")
@click.option("--video-every", type=NONNEG, default=0, show_default=True,
              help="Render the policy after every K episodes, side by side, into OUT/policy.gif (0: none).")
@click.option("--video-steps", type=COUNT, default=300, show_default=True, help="Env steps per video panel.")
@click.option("--oracle", type=float, default=None, help="Reference return for the summary.")
@click.option("--max-episode-steps", type=COUNT, default=None, help="Cap episode length (quick runs).")
@click.option("--budget-steps", type=COUNT, default=None,
              help="Stop after this many env steps, lookahead steps included.")
@click.option("--zero-shot-episodes", type=NONNEG, default=5, show_default=True,
              help="Episodes averaged for the zero-shot reference level (0: none).")
@click.option("--no-progress", is_flag=True)
def adapt(model_name: str, task: str | None, goal: str | None, adapter: str, episodes: int,
          seed: int, out: Path, overrides: tuple[str, ...], z_hold: str | None, eval_every: int,
          oracle: float | None, max_episode_steps: int | None, budget_steps: int | None,
          zero_shot_episodes: int, eval_episodes: int, video_every: int, video_steps: int,
          no_progress: bool) -> None:
    """Adapt a model's latent to a task online (rerun the same command to resume)."""
    from bfm_gym.experiments import adapt as run

    hold = _z_hold(z_hold)
    goal_xy = None
    if goal is not None:
        try:
            goal_xy = [float(v) for v in goal.split(",")]
        except ValueError as exc:
            raise click.BadParameter(f"expected x,y, got {goal!r}", param_hint="--goal") from exc
    res = run(model_name, task, adapter, episodes=episodes, seed=seed, out=out,
              config=_parse_set(overrides), goal=goal_xy, z_hold=hold, eval_every=eval_every,
              oracle=oracle, max_episode_steps=max_episode_steps, budget_steps=budget_steps,
              zero_shot_episodes=zero_shot_episodes, eval_episodes=eval_episodes,
              video_every=video_every, video_steps=video_steps, progress=not no_progress)
    s = res.summary
    for key in ("zero_shot", "zero_shot_std", "eval_first", "eval_best", "eval_last", "eval_last_std",
                "eval_last_over_zero_shot_pct", "eval_last_vs_zero_shot", "train_first", "train_best",
                "train_last", "episodes_to_95pct_oracle", "env_steps", "labels_used"):
        if key in s:
            click.echo(f"{key:<30}{s[key]}")
    if "evaluation" in s:
        click.echo(f"evaluation env steps          {s['evaluation']['env_steps']} (not counted in env_steps)")
    click.echo(f"curve: {out / 'curve.png'}  records: {out / 'records.csv'}"
               + (f"  video: {out / s['video']['file']}" if "video" in s else ""))


@cli.command()
@click.option("--domain", default=None, help="Only this domain.")
@click.option("--env", "gym_id", default=None, metavar="ID",
              help="The tasks of a Gymnasium id instead (its own reward 'native' and registered ones).")
def tasks(domain: str | None, gym_id: str | None) -> None:
    """List domains, their tasks and Gymnasium ids."""
    from bfm_gym.envs import DOMAINS, env_id, get_domain, get_task, list_tasks

    if gym_id is not None:
        click.echo(f"{gym_id}:")
        for task in list_tasks(gym_id):
            t = get_task(gym_id, task)
            click.echo(f"  {task:<20} {t.description or '(no description)'}  [{t.inputs}]")
        return
    names = [get_domain(domain).name] if domain else sorted(DOMAINS)
    for name in names:
        click.echo(f"{name}: {DOMAINS[name].description}  [{env_id(name)}]")
        for task in list_tasks(name):
            click.echo(f"  {task:<20} {get_task(name, task).description}  [{env_id(name, task)}]")


def _threads(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise click.BadParameter(f"expected 'auto' or an integer >= 1; got {value!r}", param_hint="--threads")
    return threads


def _z_hold(value: str | None) -> int | str | None:
    if value is None or value == "episode":
        return value
    try:
        hold = int(value)
    except ValueError:
        hold = 0
    if hold < 1:
        raise click.BadParameter(f"expected an integer >= 1 or 'episode'; got {value!r}", param_hint="--z-hold")
    return hold


def _add_builtin_commands() -> None:
    from bfm_gym.cli.compare import compare
    from bfm_gym.cli.video import video

    cli.add_command(video)
    cli.add_command(compare)


_add_builtin_commands()


def main() -> None:
    """Console-script entry point."""
    from bfm_gym.plugins import PluginError, add_plugin_commands

    one_line_warnings()
    try:
        add_plugin_commands(cli)
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
