"""``DMCFlattenObservation``: flatten a dm_control dict observation in dm_control's native order.

BFMs (and bfm_gym envs) see dm_control observations as one flat vector in the order of the
task's ``get_observation`` dict, which is what ``flat_observation=True`` gives. Shimmy's
``DmControlCompatibilityV0`` builds a gymnasium ``Dict`` space, and ``spaces.Dict`` sorts its
keys, so gymnasium's ``FlattenObservation`` concatenates in *sorted* order: for walker
``height, orientations, velocity`` instead of ``orientations, height, velocity``. The size is
the same (24), so nothing fails, but every feature is in the wrong place for the model.
This wrapper reads the native order from the dm_control environment's ``observation_spec()``
and concatenates in that order, as float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["DMCFlattenObservation"]


class DMCFlattenObservation(
    gym.ObservationWrapper[np.ndarray, Any, Any], gym.utils.RecordConstructorArgs
):
    """Flattens dict observations in dm_control's native key order, as float32.

    Args:
        env: A shimmy ``DmControlCompatibilityV0`` env (possibly wrapped), or any env with a
            ``Dict`` observation space when ``keys`` is given.
        keys: The key order; by default the order of the dm_control environment's
            ``observation_spec()``.

    Raises:
        TypeError: The observation space is not a ``Dict``.
        ValueError: No native order can be found and ``keys`` was not given, or ``keys`` does
            not match the space's keys.

    Example:
        >>> from dm_control import suite
        >>> from shimmy.dm_control_compatibility import DmControlCompatibilityV0
        >>> env = DMCFlattenObservation(DmControlCompatibilityV0(suite.load("walker", "run")))
        >>> env.observation_space
        Box(-inf, inf, (24,), float32)
        >>> env.keys
        ['orientations', 'height', 'velocity']

    Change logs:
        * v0.1.0 - Initially added.
    """

    def __init__(self, env: gym.Env, keys: Sequence[str] | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, keys=None if keys is None else list(keys))
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict):
            raise TypeError(
                f"DMCFlattenObservation needs a Dict observation space, got {space}; "
                "the env is already flat."
            )
        if keys is None:
            dm_env = getattr(env.unwrapped, "_env", None)
            spec = getattr(dm_env, "observation_spec", None)
            if not callable(spec):
                raise ValueError(
                    f"{type(env.unwrapped).__name__} is not a shimmy dm_control env, so the "
                    "native key order is unknown; pass keys=[...] in the order the model expects."
                )
            keys = list(spec())
        keys = list(keys)
        if sorted(keys) != sorted(space.spaces):
            raise ValueError(
                f"keys {keys} do not match the observation space's keys {list(space.spaces)}."
            )
        self.keys: list[str] = keys
        self._sizes = [int(np.prod(space.spaces[k].shape)) for k in keys]
        size = sum(self._sizes)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self._out = np.empty(size, np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        """The flat float32 observation (a new array)."""
        out = np.empty_like(self._out)
        i = 0
        for key, size in zip(self.keys, self._sizes, strict=True):
            out[i : i + size] = np.ravel(observation[key])
            i += size
        return out
