"""``bfm-gym adapt``: adapt a model's latent to a task online (resumable)."""

from __future__ import annotations

from pathlib import Path

import click

from bfm_gym.cli._options import parse_set, parse_z_hold
from bfm_gym.cli.framework import COUNT, NONNEG, OUT_DIR, SEED, BfmCommand


@click.command(cls=BfmCommand, resumable=True)
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

    hold = parse_z_hold(z_hold)
    goal_xy = None
    if goal is not None:
        try:
            goal_xy = [float(v) for v in goal.split(",")]
        except ValueError as exc:
            raise click.BadParameter(f"expected x,y, got {goal!r}", param_hint="--goal") from exc
    res = run(model_name, task, adapter, episodes=episodes, seed=seed, out=out,
              config=parse_set(overrides), goal=goal_xy, z_hold=hold, eval_every=eval_every,
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
