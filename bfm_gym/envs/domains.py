"""Domains: the dm_control simulators that FB models are trained on.

A domain names a simulator (body, physics and reset distribution) and how to
build it; tasks (:mod:`bfm_gym.envs.tasks`) are reward functions on top of it.
Built-in domains are the four of the FB literature (URLB/ExORL): ``walker``,
``cheetah``, ``quadruped`` (dm_control suite) and ``point_mass_maze`` (ours). Domains
register through the plugin hook ``register_domains`` (the built-in ones from
:mod:`bfm_gym.builtin_plugin`); :data:`DOMAINS` is a read-only view of that registry.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bfm_gym.envs.suite_observe import cheetah_observe, quadruped_observe, walker_observe
from bfm_gym.plugins.registry_view import RegistryView

# Headless rendering: EGL works without a display. Must be set before dm_control
# is imported anywhere; a user's own MUJOCO_GL wins.
os.environ.setdefault("MUJOCO_GL", "egl")


@dataclass(frozen=True)
class CoverageAxis:
    """What the coverage picture of a domain's data shows (``bfm-gym coverage``).

    Attributes:
        label: Axis label, with units (``"torso height [m]"``).
        values: ``values(next_obs) -> array``: one value per step, ``(n,)``, drawn as a
            histogram with quantiles in ``coverage.json``; or a position, ``(n, 2)``, drawn as
            a 2-D visit map with the fraction of a 20 x 20 grid of ``extent`` visited.
        extent: ``(low, high)`` of both position coordinates (2-D axes only).
    """

    label: str
    values: Callable[[Any], Any]
    extent: tuple[float, float] | None = None


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
        tasks: The domain's benchmark task set: the tasks a zero-shot report
            (``bfm-gym card``, ``benchmarks/zero_shot.py``) averages. Tasks that plugins add
            to the domain are evaluable by name but do not join this set. Empty: every
            registered task of the domain.
        floor: Quality floor on the mean zero-shot return over ``tasks`` that the
            shipped model of the domain must reach (``None``: no floor).
        coverage: What the coverage picture of the domain's datasets shows (``None``: only
            the per-task return distributions).
        presets: The domain's settings for each model family's presets, by family name:
            ``{"fb": {"gamma": 0.99, "paper": {"z_dim": 100}}}``: top-level fields apply to
            every preset size, a size's mapping (``"paper"``, ``"cpu"``, ``"tiny"``) to that size
            only. Fields not given keep the family's size defaults (see each family's
            ``Config.preset``).
    """

    name: str
    load: Callable[[Any], Any]
    description: str = ""
    has_goals: bool = False
    observe: Callable[[Any], Any] | None = None
    tasks: tuple[str, ...] = ()
    floor: float | None = None
    coverage: CoverageAxis | None = None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def preset_values(self, family: str, size: str) -> dict[str, Any]:
        """The fields this domain sets for ``family``'s preset of ``size`` (see ``presets``)."""
        mine = dict(self.presets.get(family, {}))
        sized = {k: mine.pop(k) for k in list(mine) if isinstance(mine[k], Mapping)}
        return {**mine, **dict(sized.get(size, {}))}


class _DropSetTotalMassNotice(logging.Filter):
    """Drops MuJoCo's notice that the ``settotalmass`` compiler attribute is deprecated: it
    comes from dm_control's own ``cheetah.xml``, on every cheetah env built, and a user can do
    nothing about it. Other absl messages pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "settotalmass" not in record.getMessage()


_SETTOTALMASS_FILTER = _DropSetTotalMassNotice()


def _suite_loader(domain: str, base_task: str) -> Callable[[Any], Any]:
    def load(random: Any) -> Any:
        from dm_control import suite

        absl_logger = logging.getLogger("absl")
        if _SETTOTALMASS_FILTER not in absl_logger.filters:
            absl_logger.addFilter(_SETTOTALMASS_FILTER)
        return suite.load(domain, base_task, task_kwargs={"random": random})

    return load


def _maze_load(random: Any) -> Any:
    from bfm_gym.envs import point_mass_maze

    return point_mass_maze.load(random=random)


def _maze_observe(physics: Any) -> Any:
    from bfm_gym.envs import point_mass_maze

    return point_mass_maze.observe(physics)


def builtin_domains() -> list[Domain]:
    """The built-in domains, registered through the ``register_domains`` hook by
    :mod:`bfm_gym.builtin_plugin`. Their ``tasks`` are also the Gymnasium ids registered at
    import (:mod:`bfm_gym.envs.registration`), without importing dm_control."""
    # The base task fixes the floor size and reset distribution; "run" variants get
    # the largest floor.
    # Coverage axes index the flattened observation (dm_control's key order): walker's
    # "height" is entry 14, cheetah's first "velocity" entry (root x) is 8, quadruped's
    # "torso_upright" is 47, the maze's position is entries 0-1.
    # Family presets per domain (sources in docs/algorithms.md): FB's paper settings follow
    # metamotivo's DMC training script (z_dim 100 for walker and the maze; the maze's slow B and
    # actor, lr 1e-6, and discount 0.99); the maze's cpu size keeps z_dim 100 and B and actor at
    # the cpu size's 1e-4, the recipe that measured best per CPU-hour (see FBConfig.preset). HILP's representation discount is the official README's per
    # domain (walker 0.96, else 0.98), quadruped uses its Q loss, and the maze (no official
    # command) discounts at 0.99 like FB. Cheetah's cpu size adds a moving average of the weights
    # and the actor's behaviour-cloning term: the recipe of the shipped cheetah (FBConfig.preset).
    return [
        Domain("walker", _suite_loader("walker", "run"), "planar biped, 6 actuators",
               observe=walker_observe, tasks=("stand", "walk", "run", "flip"), floor=550.0,
               coverage=CoverageAxis("torso height [m]", lambda o: o[:, 14]),
               presets={"fb": {"paper": {"z_dim": 100}}, "hilp": {"hilp_gamma": 0.96}}),
        Domain("cheetah", _suite_loader("cheetah", "run"), "planar runner, 6 actuators",
               observe=cheetah_observe, tasks=("walk", "run", "walk_backward", "run_backward"), floor=400.0,
               coverage=CoverageAxis("forward velocity [m/s]", lambda o: o[:, 8]),
               presets={"fb": {"cpu": {"ema_tau": 1e-4, "actor_bc": 0.1}}}),
        Domain("quadruped", _suite_loader("quadruped", "run"), "3-D four-legged body, 12 actuators",
               observe=quadruped_observe, tasks=("stand", "walk", "run", "jump"), floor=550.0,
               coverage=CoverageAxis("torso upright (cos of tilt)", lambda o: o[:, 47]),
               presets={"hilp": {"q_loss": True}}),
        Domain("point_mass_maze", _maze_load, "point mass in a four-room maze, 2 actuators", True,
               _maze_observe, tasks=("reach_top_left", "reach_top_right", "reach_bottom_left",
                                      "reach_bottom_right"), floor=600.0,
               coverage=CoverageAxis("positions", lambda o: o[:, :2], extent=(-0.3, 0.3)),
               presets={"fb": {"gamma": 0.99, "paper": {"z_dim": 100, "lr_b": 1e-6, "lr_actor": 1e-6},
                               "cpu": {"z_dim": 100}},
                        "hilp": {"gamma": 0.99, "hilp_gamma": 0.99}}),
    ]


DOMAINS: Mapping[str, Domain] = RegistryView("domains", "DOMAINS")
"""The registered domains by name: a read-only view of the ``register_domains`` hook's entries
(add one with :func:`register_domain` or a plugin)."""


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
    """Adds a domain from code (plugins use the ``register_domains`` hook instead).

    Raises:
        ValueError: A domain of that name exists and ``overwrite`` is False.
    """
    from bfm_gym.plugins import load_plugins

    table = load_plugins().domains
    if domain.name in table and not overwrite:
        raise ValueError(f"Domain {domain.name!r} is already registered.")
    table[domain.name] = (domain, "register_domain")


def is_gym_domain(domain: str) -> bool:
    """Whether ``domain`` names a Gymnasium id rather than a built-in dm_control domain."""
    return domain not in DOMAINS
