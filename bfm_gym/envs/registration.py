"""Gymnasium ids for every registered domain and its tasks.

Ids: ``bfm_gym/{domain}-v0`` (reward-free) and ``bfm_gym/{domain}-{task}-v0``, plus
``bfm_gym/point_mass_maze-reach-v0`` which takes ``goal=(x, y)``. Entry points are
strings, so ``env.spec`` serialises (``env.spec.to_json()``). The built-in domains' ids
exist from ``import bfm_gym`` on; a plugin domain's ids once plugins load (the first use of
any registry, e.g. ``bfm_gym.envs.DOMAINS``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from bfm_gym.envs.domains import builtin_domains

ENTRY_POINT = "bfm_gym.envs.dmc_env:DMCEnv"

BUILTIN_TASKS: dict[str, tuple[str, ...]] = {d.name: d.tasks for d in builtin_domains()}
"""The benchmark tasks of each built-in domain (``Domain.tasks``), read without importing
dm_control; a test checks they are the tasks the built-in plugin registers."""


def env_id(domain: str, task: str | None = None) -> str:
    """Returns the Gymnasium id of a domain (reward-free) or a domain task."""
    return f"bfm_gym/{domain}-v0" if task is None else f"bfm_gym/{domain}-{task}-v0"


def task_name(domain: str, task: str) -> str:
    """The task's name within ``domain``: ``"walker-walk"`` and ``"walk"`` both give ``"walk"``.

    Only the ``{domain}-`` prefix is removed; the name is not checked (use
    :func:`bfm_gym.envs.get_task` for that).

    Example:
        >>> task_name("walker", "walker-walk"), task_name("walker", "walk")
        ('walk', 'walk')
        >>> task_name("point_mass_maze", "point_mass_maze-reach_top_left")
        'reach_top_left'
    """
    prefix = f"{domain}-"
    return task[len(prefix):] if task.startswith(prefix) else task


def register_envs(domains: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Registers the ids of ``domains`` (``{domain: tasks}``; default: the built-in domains and
    their benchmark tasks) and returns them. Idempotent."""
    ids: list[str] = []
    for domain, tasks in (BUILTIN_TASKS if domains is None else domains).items():
        for task in (None, *tasks):
            ids.append(_register(env_id(domain, task), {"domain": domain, "task": task}))
    if domains is None:
        ids.append(
            _register(
                "bfm_gym/point_mass_maze-reach-v0",
                {"domain": "point_mass_maze", "goal": [0.15, 0.15]},
            )
        )
    return ids


def _register(id_: str, kwargs: dict) -> str:
    if id_ not in gym.registry:
        gym.register(id=id_, entry_point=ENTRY_POINT, kwargs=kwargs, disable_env_checker=False)
    return id_


def register_plugin_envs(registries: Any) -> list[str]:
    """Registers the ids of the domains that plugins registered, each with every task registered
    for it (the built-in domains' ids come from :func:`register_envs` at ``import bfm_gym``).
    ``import bfm_gym`` runs it whenever plugins load."""
    tasks: dict[str, list[str]] = {}
    for domain, name in registries.tasks:
        tasks.setdefault(domain, []).append(name)
    return register_envs({name: tuple(tasks.get(name, ())) for name, (_domain, plugin) in registries.domains.items()
                          if plugin != "bfm_gym"})
