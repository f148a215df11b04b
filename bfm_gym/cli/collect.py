"""``bfm-gym collect``: a reward-free dataset of a domain, or a dataset of any Gymnasium env."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bfm_gym.cli._options import echo_coverage, parse_set
from bfm_gym.cli.framework import COUNT, OUT_DIR, SEED, BfmCommand, RegistryHelpOption


def _domains() -> list[str]:
    from bfm_gym.envs import DOMAINS

    return list(DOMAINS)


def _agents() -> list[str]:
    from bfm_gym.data.agents import AGENTS

    return list(AGENTS)


@click.command(cls=BfmCommand, resumable=True)
@click.option("--domain", default=None, cls=RegistryHelpOption, names=_domains,
              help="A registered bfm_gym domain: {names}.")
@click.option("--env", "env_id", default=None, metavar="ID",
              help="Instead of --domain: any registered Gymnasium id with a Box action space "
                   "(e.g. Hopper-v5, dm_control/walker-walk-v0).")
@click.option("--env-kwargs", default=None, metavar="JSON", help="gym.make keyword arguments (with --env).")
@click.option("--max-episode-steps", type=COUNT, default=None,
              help="Episode cap with --env (default: the id's own, else 1000).")
@click.option("--agent", default="rnd", show_default=True, cls=RegistryHelpOption, names=_agents,
              help="A registered collector agent: {names}.")
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
               agent_config=parse_set(overrides), chunk_episodes=chunk_episodes,
               overwrite=overwrite, progress=not no_progress, threads=threads,
               env_kwargs=kwargs, max_episode_steps=max_episode_steps)
    echo_coverage(path)
