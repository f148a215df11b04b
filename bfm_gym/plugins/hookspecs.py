"""Hook specifications: what a bfm_gym plugin can provide.

Every hook takes a callback and the plugin calls it once per thing it adds; the
host owns the registries. Built-in domains, agents, tasks, adapters, models and commands register through
these same hooks (:mod:`bfm_gym.builtin_plugin`). Hook implementations must not
give their parameters defaults (pluggy ignores such parameters).
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("bfm_gym")
hookimpl = pluggy.HookimplMarker("bfm_gym")


@hookspec
def register_adapters(register: Any) -> None:
    """Register adaptation methods: ``register(name, adapter_class)``."""


@hookspec
def register_models(register: Any) -> None:
    """Register named pre-trained models: ``register(name, model_folder_path)``."""


@hookspec
def register_families(register: Any) -> None:
    """Register model families: ``register(name, Family(format=..., load=..., create=...))``
    (:class:`bfm_gym.models.registry.Family`); ``bfm_gym.load`` dispatches on ``config.json``'s
    ``"format"``."""


@hookspec
def register_domains(register: Any) -> None:
    """Register simulators: ``register(name, Domain(name, load, ...))``
    (:class:`bfm_gym.envs.Domain`; its ``tasks`` field is the domain's benchmark task set)."""


@hookspec
def register_agents(register: Any) -> None:
    """Register data-collection agents: ``register(name, agent_class)`` with a
    :class:`bfm_gym.data.agents.CollectorAgent` subclass (``bfm-gym collect --agent NAME``)."""


@hookspec
def register_tasks(register: Any) -> None:
    """Register tasks: ``register(domain, name, reward_fn, description)`` with
    ``reward_fn(physics) -> float`` computed from the simulator state after a step."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``bfm-gym`` click group: ``cli.add_command(...)`` or ``@cli.command()``."""
