"""The built-in plugin: bfm_gym's own domains, collector agents, tasks, model families,
shipped models, adapters and ``bfm-gym`` commands, registered through the same hooks a third-party plugin implements."""

from __future__ import annotations

from typing import Any

from bfm_gym.plugins.hookspecs import hookimpl


def _register_by_name(register: Any, *classes: Any) -> None:
    """Registers each class under its ``name`` attribute (agents, adapters)."""
    for cls in classes:
        register(cls.name, cls)


@hookimpl
def register_domains(register: Any) -> None:
    from bfm_gym.envs.domains import builtin_domains

    for domain in builtin_domains():
        register(domain.name, domain)


@hookimpl
def register_agents(register: Any) -> None:
    from bfm_gym.data.agents.random import OUAgent, RandomAgent
    from bfm_gym.data.agents.rnd import RNDAgent
    from bfm_gym.data.agents.stopgo import StopGoAgent

    _register_by_name(register, RandomAgent, OUAgent, RNDAgent, StopGoAgent)


@hookimpl
def register_tasks(register: Any) -> None:
    from bfm_gym.envs.reacher_tasks import reacher_tasks
    from bfm_gym.envs.tasks import builtin_tasks

    for domain, name, fn, description in (*builtin_tasks(), *reacher_tasks()):  # reacher: the shipped model's
        register(domain, name, fn, description)


@hookimpl
def register_models(register: Any) -> None:
    from pathlib import Path

    import bfm_gym.pretrained as pretrained

    here = Path(pretrained.__file__).parent
    for folder in sorted(here.iterdir()):
        if (folder / "config.json").is_file():
            register(folder.name, folder)


@hookimpl
def register_families(register: Any) -> None:
    from bfm_gym.models.registry import Family

    register("fb", Family(format="bfm_gym.fb", load="bfm_gym.models.fb.family:load",
                          create="bfm_gym.models.fb.family:create",
                          trainer="bfm_gym.models.fb.trainer:FBTrainer",
                          description="Forward-Backward and FB-AWARE"))
    register("hilp", Family(format="bfm_gym.hilp", load="bfm_gym.models.hilp.family:load",
                            create="bfm_gym.models.hilp.family:create",
                            trainer="bfm_gym.models.hilp.trainer:HILPTrainer",
                            description="Hilbert foundation policies (HILP)"))


@hookimpl
def register_adapters(register: Any) -> None:
    from bfm_gym.adapters.lola import LoLAAdapter
    from bfm_gym.adapters.opti import OptiAdapter
    from bfm_gym.adapters.rela import ReLAAdapter
    from bfm_gym.adapters.zero_shot import ZeroShotAdapter

    _register_by_name(register, ZeroShotAdapter, OptiAdapter, ReLAAdapter, LoLAAdapter)


@hookimpl
def register_commands(cli: Any) -> None:
    from bfm_gym.cli.adapt import adapt
    from bfm_gym.cli.card import card
    from bfm_gym.cli.collect import collect
    from bfm_gym.cli.compare import compare
    from bfm_gym.cli.coverage import coverage
    from bfm_gym.cli.eval import eval_
    from bfm_gym.cli.export import export
    from bfm_gym.cli.plugins import plugins
    from bfm_gym.cli.pretrain import pretrain
    from bfm_gym.cli.tasks import tasks
    from bfm_gym.cli.video import video

    for command in (collect, coverage, pretrain, eval_, export, card, plugins, adapt, tasks, compare, video):
        cli.add_command(command)
