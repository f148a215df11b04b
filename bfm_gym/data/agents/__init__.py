"""Reward-free exploration agents that collect datasets.

Every agent follows :class:`~bfm_gym.data.agents.base.CollectorAgent`; build one
by name with :func:`make_agent`:

- ``random``: uniform random actions.
- ``ou``: Ornstein-Uhlenbeck (temporally-correlated) noise actions.
- ``rnd``: Random Network Distillation intrinsic reward with a TD3 actor-critic
  trained online, as used for the ExORL datasets.
- ``stopgo``: bursts of constant random actions, each followed by braking to rest and a
  hold (needs the joint velocities' place in the observation, ``velocity_index``).

Plugins add agents through the ``register_agents`` hook.

Example:
    >>> import numpy as np
    >>> agent = make_agent("ou", obs_dim=24, action_dim=6, seed=0, sigma=0.5)
    >>> agent.reset()
    >>> agent.act(np.zeros(24, dtype=np.float32)).shape
    (6,)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from bfm_gym.data.agents.base import AgentConfig, CollectorAgent
from bfm_gym.data.agents.random import OUAgent, OUConfig, RandomAgent, RandomConfig
from bfm_gym.data.agents.rnd import RNDAgent, RNDConfig
from bfm_gym.data.agents.stopgo import StopGoAgent, StopGoConfig
from bfm_gym.plugins.registry_view import RegistryView

__all__ = [
    "AGENTS",
    "AgentConfig",
    "CollectorAgent",
    "OUAgent",
    "OUConfig",
    "RNDAgent",
    "RNDConfig",
    "RandomAgent",
    "RandomConfig",
    "StopGoAgent",
    "StopGoConfig",
    "make_agent",
]

AGENTS: Mapping[str, type[CollectorAgent]] = RegistryView("agents", "AGENTS")
"""Collector agents by name (read-only): the built-in ones and those of plugins, registered
through the ``register_agents`` hook; :func:`make_agent` builds them."""


def make_agent(
    name: str, obs_dim: int, action_dim: int, seed: int, **config: Any
) -> CollectorAgent:
    """Builds the collector agent registered under ``name``.

    Args:
        name: A key of :data:`AGENTS`, e.g. ``"rnd"``.
        obs_dim: Size of the flat observation vector.
        action_dim: Size of the action vector (actions in ``[-1, 1]``).
        seed: Seed of all the agent's random number generators.
        **config: Fields of the agent's config dataclass (``AGENTS[name].config_class``).

    Returns:
        The agent.

    Raises:
        ValueError: If ``name`` is not registered (the message lists the valid
            names), or a config key is not a field of the agent's config.
    """
    if name not in AGENTS:
        close = difflib.get_close_matches(name, list(AGENTS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown collector agent {name!r}{hint}; valid names: "
            f"{', '.join(repr(n) for n in sorted(AGENTS))}"
        )
    return AGENTS[name](obs_dim, action_dim, seed, **config)
