"""Domains: the dm_control simulators that FB models are trained on.

A domain names a simulator (body, physics and reset distribution) and how to
build it; tasks (:mod:`bfm_gym.envs.tasks`) are reward functions on top of it.
Built-in domains are the four of the FB literature (URLB/ExORL): ``walker``,
``cheetah``, ``quadruped`` (dm_control suite) and ``point_mass_maze`` (ours).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Headless rendering: EGL works without a display. Must be set before dm_control
# is imported anywhere; a user's own MUJOCO_GL wins.
os.environ.setdefault("MUJOCO_GL", "egl")


@dataclass(frozen=True)
class Domain:
    """How to build one dm_control simulator.

    Attributes:
        name: Domain name used in env ids and dataset metadata.
        load: ``load(random) -> dm_control.rl.control.Environment``; ``random`` is a
            seed or ``np.random.RandomState`` for the reset distribution. The
            environment's own reward is ignored: bfm_gym computes task rewards.
        description: One line for listings.
        has_goals: Whether ``goal_task(domain, goal)`` is defined (maze positions).
        observe: Optional fast ``observe(physics) -> float32 array`` equal to flattening
            the task's ``get_observation`` (a test checks the equality).
    """

    name: str
    load: Callable[[Any], Any]
    description: str = ""
    has_goals: bool = False
    observe: Callable[[Any], Any] | None = None


def _suite_loader(domain: str, base_task: str) -> Callable[[Any], Any]:
    def load(random: Any) -> Any:
        from dm_control import suite

        return suite.load(domain, base_task, task_kwargs={"random": random})

    return load


def _maze_load(random: Any) -> Any:
    from bfm_gym.envs import point_mass_maze

    return point_mass_maze.load(random=random)


def _maze_observe(physics: Any) -> Any:
    from bfm_gym.envs import point_mass_maze

    return point_mass_maze.observe(physics)


DOMAINS: dict[str, Domain] = {
    # The base task fixes the floor size and reset distribution; "run" variants get
    # the largest floor.
    "walker": Domain("walker", _suite_loader("walker", "run"), "planar biped, 6 actuators"),
    "cheetah": Domain("cheetah", _suite_loader("cheetah", "run"), "planar runner, 6 actuators"),
    "quadruped": Domain(
        "quadruped", _suite_loader("quadruped", "run"), "3-D four-legged body, 12 actuators"
    ),
    "point_mass_maze": Domain(
        "point_mass_maze", _maze_load, "point mass in a four-room maze, 2 actuators", True,
        _maze_observe,
    ),
}


def get_domain(name: str) -> Domain:
    """Returns the domain called ``name``.

    Raises:
        ValueError: Unknown domain; the message lists the valid names.
    """
    if name not in DOMAINS:
        close = difflib.get_close_matches(str(name), list(DOMAINS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown domain {name!r}.{hint} Valid domains: {', '.join(sorted(DOMAINS))}."
        )
    return DOMAINS[name]


def register_domain(domain: Domain, *, overwrite: bool = False) -> None:
    """Adds a domain (used by plugins).

    Raises:
        ValueError: A domain of that name exists and ``overwrite`` is False.
    """
    if domain.name in DOMAINS and not overwrite:
        raise ValueError(f"Domain {domain.name!r} is already registered.")
    DOMAINS[domain.name] = domain
