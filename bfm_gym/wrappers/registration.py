"""Gymnasium ids of the latent-action envs, with string entry points.

Ids: ``bfm_gym/{domain}-{task}-latent-v0`` for every built-in domain and task,
``bfm_gym/{domain}-latent-v0`` (reward-free: reward 0 unless ``reward_fn`` is given) and
``bfm_gym/point_mass_maze-reach-latent-v0`` (takes ``goal=(x, y)``). Each registers

* ``entry_point`` :func:`make_latent_env`: a bfm_gym env wrapped in
  :class:`~bfm_gym.wrappers.LatentActionWrapper` (``gym.make``);
* ``vector_entry_point`` :func:`~bfm_gym.wrappers.vector.make_latent_vector_env`: N inner envs
  with one batched policy forward per step (``gym.make_vec``, the default mode for these ids).

The ``model`` kwarg defaults to the domain name, i.e. the shipped model of that domain;
``gym.make(id, model="path/to/model")`` uses another. This module imports neither torch nor
dm_control, so registering is cheap.

Example:
    >>> import gymnasium as gym, bfm_gym
    >>> env = gym.make("bfm_gym/walker-run-latent-v0", model="walker", z_hold=4)  # doctest: +SKIP
    >>> envs = gym.make_vec("bfm_gym/walker-run-latent-v0", num_envs=8, model="walker")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from bfm_gym.envs.registration import BUILTIN_TASKS

if TYPE_CHECKING:
    from bfm_gym.wrappers.latent import LatentActionWrapper

__all__ = [
    "LATENT_ENTRY_POINT",
    "LATENT_VECTOR_ENTRY_POINT",
    "latent_env_id",
    "make_latent_env",
    "register_latent_envs",
]

LATENT_ENTRY_POINT = "bfm_gym.wrappers.registration:make_latent_env"
LATENT_VECTOR_ENTRY_POINT = "bfm_gym.wrappers.vector:make_latent_vector_env"
MAZE_REACH_GOAL = (0.15, 0.15)
"""Default goal of ``bfm_gym/point_mass_maze-reach-latent-v0`` (as the raw reach id)."""


def latent_env_id(domain: str, task: str | None = None) -> str:
    """The latent id of a domain (reward-free) or a domain task."""
    return f"bfm_gym/{domain}-latent-v0" if task is None else f"bfm_gym/{domain}-{task}-latent-v0"


def register_latent_envs() -> list[str]:
    """Registers every latent id (idempotent) and returns them."""
    ids: list[str] = []
    for domain, tasks in BUILTIN_TASKS.items():
        for task in (None, *tasks):
            ids.append(_register(latent_env_id(domain, task), {"domain": domain, "task": task}))
    ids.append(
        _register(
            "bfm_gym/point_mass_maze-reach-latent-v0",
            {"domain": "point_mass_maze", "goal": list(MAZE_REACH_GOAL)},
        )
    )
    return ids


def _register(id_: str, kwargs: dict[str, Any]) -> str:
    if id_ not in gym.registry:
        gym.register(
            id=id_,
            entry_point=LATENT_ENTRY_POINT,
            vector_entry_point=LATENT_VECTOR_ENTRY_POINT,
            kwargs={**kwargs, "model": kwargs["domain"]},
            disable_env_checker=False,
        )
    return id_


def make_inner_env(
    domain: str,
    task: str | None = None,
    *,
    goal: Sequence[float] | None = None,
    render_mode: str | None = None,
    render_kwargs: dict[str, Any] | None = None,
    max_inner_steps: int | None = None,
) -> gym.Env:
    """The bfm_gym env under a latent id: ``DMCEnv``, in a ``TimeLimit`` when
    ``max_inner_steps`` shortens its 1000-step episodes."""
    from bfm_gym.envs.dmc_env import DMCEnv

    env: gym.Env = DMCEnv(
        domain, task, goal=goal, render_mode=render_mode, render_kwargs=render_kwargs
    )
    if max_inner_steps is not None:
        if not isinstance(max_inner_steps, int) or max_inner_steps < 1:
            raise ValueError(f"max_inner_steps must be an int >= 1; got {max_inner_steps!r}.")
        env = _EpisodeCap(env, max_inner_steps)
    return env


class _EpisodeCap(gym.wrappers.TimeLimit):
    """A ``TimeLimit`` on the inner env that leaves ``env.spec`` alone: the cap is rebuilt from
    the id's ``max_inner_steps`` kwarg, so it must not also become the outer
    ``max_episode_steps`` when ``gym.make(env.spec)`` rebuilds the env."""

    @property
    def spec(self) -> Any:  # type: ignore[override]
        return self.env.spec


def make_latent_env(
    domain: str = "walker",
    task: str | None = None,
    *,
    model: Any = None,
    goal: Sequence[float] | None = None,
    z_hold: Any = 1,
    render_mode: str | None = None,
    render_kwargs: dict[str, Any] | None = None,
    max_inner_steps: int | None = None,
    **wrapper_kwargs: Any,
) -> LatentActionWrapper:
    """Entry point of the latent ids: ``LatentActionWrapper(DMCEnv(domain, task), model)``.

    Args:
        domain: bfm_gym domain.
        task: Task of the domain, or None for reward-free (reward 0 unless ``reward_fn``).
        model: Shipped name, model folder or loaded BFM; None means the domain name.
        goal: Goal position for ``point_mass_maze`` (exclusive with ``task``).
        z_hold: Low-level steps per latent action (``"episode"``: one per episode).
        render_mode: ``"rgb_array"`` or ``"depth_array"`` (frames of the inner env).
        render_kwargs: ``height``/``width``/``camera_id`` of the frames.
        max_inner_steps: Cap on inner steps per episode (a ``TimeLimit`` on the inner env;
            bfm_gym episodes are 1000 steps otherwise). A state reset does not rewind it.
        **wrapper_kwargs: ``action_map``, ``strict``, ``reward_fn``, ``record_state``,
            ``record_transitions``, ``device`` of :class:`LatentActionWrapper`.

    Raises:
        ValueError: No such model (the message lists the shipped models and how to pass one).
    """
    from bfm_gym.wrappers.latent import LatentActionWrapper, resolve_model

    device = wrapper_kwargs.get("device", "cpu")
    bfm, recorded = resolve_model(domain if model is None else model, device=device, domain=domain)
    inner = make_inner_env(
        domain, task, goal=goal, render_mode=render_mode, render_kwargs=render_kwargs,
        max_inner_steps=max_inner_steps,
    )  # fmt: skip
    env = LatentActionWrapper(inner, bfm, z_hold, **wrapper_kwargs)
    env._saved_kwargs["model"] = recorded  # the name or path asked for, not the loaded object
    return env


make_latent_env.metadata = {"render_modes": ["rgb_array", "depth_array"]}  # type: ignore[attr-defined]
