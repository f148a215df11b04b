"""``bfm-gym tasks``: domains, their tasks and Gymnasium ids."""

from __future__ import annotations


import click

from bfm_gym.cli.framework import BfmCommand


@click.command(cls=BfmCommand)
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
