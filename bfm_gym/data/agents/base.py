"""The collector-agent protocol: what a reward-free exploration agent must offer.

A collector agent chooses actions while a dataset is recorded, without any task
reward. The collection loop only ever calls, per episode and per step::

    agent.reset()                                   # at each episode start
    action = agent.act(obs)                         # (action_dim,) float32 in [-1, 1]
    ...step the env...
    metrics = agent.observe(obs, action, next_obs, terminated)

and, to checkpoint a long collection, :meth:`CollectorAgent.state_dict` /
:meth:`CollectorAgent.load_state_dict`. A state dict holds only numpy arrays
(strings and JSON are 0-d unicode arrays), so it round-trips through
``numpy.savez`` and ``numpy.load(..., allow_pickle=False)``, and it holds
*everything* needed to resume bit-exactly: weights, optimiser moments, replay
buffer, RNG states and counters.

Subclasses override the protected hooks ``_state_dict`` / ``_load_state_dict``;
the public methods add and check the metadata (agent name, dimensions, config)
so that a checkpoint is never loaded into a differently shaped agent.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from typing import Any, ClassVar

import numpy as np

from bfm_gym.config import Config

__all__ = [
    "STATE_FORMAT_VERSION",
    "AgentConfig",
    "CollectorAgent",
    "generator_from_array",
    "generator_to_array",
]

STATE_FORMAT_VERSION = 1
"""Version of the state-dict layout; bumped when keys change meaning."""

@dataclasses.dataclass(frozen=True, kw_only=True)
class AgentConfig(Config):
    """Base class of the per-agent configs (frozen, keyword-only dataclasses;
    ``from_dict`` refuses unknown keys, see :class:`bfm_gym.config.Config`)."""


def generator_to_array(rng: np.random.Generator) -> np.ndarray:
    """Encodes a numpy Generator's bit-generator state as a 0-d unicode array.

    PCG64 states are 128-bit integers, which no numpy integer dtype holds, so
    the state dict is stored as JSON text (loadable with ``allow_pickle=False``).
    """
    return np.array(json.dumps(rng.bit_generator.state))


def generator_from_array(rng: np.random.Generator, state: np.ndarray) -> None:
    """Restores ``rng`` in place from :func:`generator_to_array`'s output."""
    rng.bit_generator.state = json.loads(str(state))


class CollectorAgent(abc.ABC):
    """A reward-free agent that picks the actions of a data-collection run.

    Args:
        obs_dim: Size of the flat observation vector.
        action_dim: Size of the action vector; actions live in ``[-1, 1]^action_dim``.
        seed: Seeds every random number generator the agent owns. The agent
            uses no global RNG, so two agents with the same seed, config and
            inputs produce the same actions.
        **config: Fields of :attr:`config_class`; unknown keys raise ``ValueError``.

    Raises:
        ValueError: On non-positive dimensions or unknown config keys.
    """

    name: ClassVar[str]
    """Registry name, e.g. ``"rnd"``."""
    config_class: ClassVar[type[AgentConfig]] = AgentConfig
    """Dataclass that parses ``**config``."""

    def __init__(self, obs_dim: int, action_dim: int, seed: int, **config: Any) -> None:
        if obs_dim < 1 or action_dim < 1:
            raise ValueError(
                f"{type(self).__name__} needs obs_dim >= 1 and action_dim >= 1, "
                f"got obs_dim={obs_dim}, action_dim={action_dim}"
            )
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.seed = int(seed)
        self.config = self.config_class.from_dict(config)

    # -- per-episode / per-step interface -------------------------------------

    @abc.abstractmethod
    def reset(self) -> None:
        """Starts a new episode (e.g. resets temporally-correlated noise)."""

    @abc.abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Chooses the action for ``obs``.

        Args:
            obs: Observation, float32 of shape ``(obs_dim,)``.

        Returns:
            Action, float32 of shape ``(action_dim,)`` with entries in ``[-1, 1]``.
        """

    def observe(
        self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, terminated: bool
    ) -> dict[str, float]:
        """Records one transition; agents that learn may train here.

        Called after every env step. The default does nothing.

        Args:
            obs: Observation the action was chosen on, ``(obs_dim,)``.
            action: Action sent to the env, ``(action_dim,)``.
            next_obs: Observation after the step, ``(obs_dim,)``.
            terminated: Whether the episode ended in a terminal state
                (not a time-limit truncation).

        Returns:
            Training metrics of this step; empty on steps without an update.
        """
        return {}

    # -- checkpointing (template methods) --------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Returns everything needed to resume this agent bit-exactly.

        Returns:
            Flat mapping from ``"/"``-separated keys to numpy arrays (no object
            arrays), safe for ``numpy.savez`` and ``numpy.load(allow_pickle=False)``.
        """
        state = self._meta()
        state.update(self._state_dict())
        return state

    def load_state_dict(self, state: dict[str, np.ndarray] | Any) -> None:
        """Restores the agent from :meth:`state_dict`'s output.

        Args:
            state: The state dict, or the ``NpzFile`` returned by ``numpy.load``.

        Raises:
            ValueError: If the checkpoint is of another agent, dimension, config
                or format version; build the agent with the checkpoint's
                ``meta/config`` to load it.
        """
        state = {key: np.asarray(state[key]) for key in state}
        for key, value in self._meta().items():
            if key not in state:
                raise ValueError(f"not a {self.name!r} agent state: missing key {key!r}")
            found = state[key].item()
            if found != value.item():
                raise ValueError(
                    f"cannot load {key}={found!r} into a {type(self).__name__} with "
                    f"{key}={value.item()!r}; build the agent with the checkpoint's "
                    f"config ({state.get('meta/config', np.array('?')).item()})"
                )
        self._load_state_dict(state)

    def _meta(self) -> dict[str, np.ndarray]:
        """The ``meta/*`` entries: written by :meth:`state_dict`, checked on load."""
        return {
            "meta/format_version": np.array(STATE_FORMAT_VERSION, dtype=np.int64),
            "meta/name": np.array(self.name),
            "meta/obs_dim": np.array(self.obs_dim, dtype=np.int64),
            "meta/action_dim": np.array(self.action_dim, dtype=np.int64),
            "meta/config": np.array(json.dumps(self.config.to_dict(), sort_keys=True)),
        }

    @abc.abstractmethod
    def _state_dict(self) -> dict[str, np.ndarray]:
        """Agent-specific part of :meth:`state_dict` (keys outside ``meta/``)."""

    @abc.abstractmethod
    def _load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Agent-specific part of :meth:`load_state_dict`; ``meta/`` is already checked."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(obs_dim={self.obs_dim}, action_dim={self.action_dim}, "
            f"seed={self.seed}, {self.config!r})"
        )
