"""Stop-and-go: bursts of constant random actions, each followed by braking to rest and a hold.

Uniform or Ornstein-Uhlenbeck noise almost never brings a torque-driven arm to rest: on
Gymnasium's ``Reacher-v5`` (no gravity, light joint damping, one unit of action adds about
4 rad/s of joint velocity per step) under 0.1 % of such steps end near a given point at
under 1 rad/s, so a model trained on that data sees few transitions that *stay* somewhere,
and its policies pass over targets instead of stopping on them. This agent alternates:

1. **go**: one action drawn uniformly from ``[-1, 1]^action_dim`` held for ``move_min`` to
   ``move_max`` steps (a fast move in a random direction);
2. **stop**: ``a = -gain * v + noise`` where ``v`` is the joint-velocity part of the
   observation, until every ``|v_i| < slow`` (or ``brake_max`` steps have passed);
3. **hold**: the same braking law for ``hold_min`` to ``hold_max`` more steps, which keeps
   the arm (nearly) still where the move left it, then back to 1.

It needs observations that contain one velocity per action dimension, at
``obs[velocity_index : velocity_index + action_dim]``, with action ``i`` accelerating
velocity ``i`` in its own direction (direct-drive, fully actuated arms such as
``Reacher-v5``, whose joint velocities are ``obs[6:8]``). It uses no task and no reward.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bfm_gym.data.agents.base import (
    AgentConfig,
    CollectorAgent,
    generator_from_array,
    generator_to_array,
)
from bfm_gym.utils.checks import check_ints, check_range

__all__ = ["StopGoAgent", "StopGoConfig"]

_GO, _STOP, _HOLD = 0, 1, 2


@dataclasses.dataclass(frozen=True, kw_only=True)
class StopGoConfig(AgentConfig):
    """Options of the ``stopgo`` agent (see the module docstring).

    The defaults suit ``Reacher-v5`` with ``velocity_index=6``: ``gain`` 0.25 stops a joint
    in about one step (an action of 1 changes its velocity by about 4 rad/s), larger gains
    overshoot and chatter.
    """

    velocity_index: int | None = None
    """Index of the first velocity in the observation (required; Reacher-v5: 6)."""
    gain: float = 0.25
    """Braking law ``a = -gain * v`` (clipped to ``[-1, 1]``)."""
    noise: float = 0.05
    """Std of the Gaussian noise added to the braking action."""
    slow: float = 1.0
    """Velocity magnitude below which a joint counts as at rest."""
    move_min: int = 2
    """Fewest steps of a go burst."""
    move_max: int = 10
    """Most steps of a go burst."""
    hold_min: int = 2
    """Fewest steps held at rest."""
    hold_max: int = 10
    """Most steps held at rest."""
    brake_max: int = 15
    """Steps after which a stop that has not reached rest gives up and holds anyway."""

    def __post_init__(self) -> None:
        if self.velocity_index is None or self.velocity_index < 0:
            raise ValueError(
                "the stopgo agent needs velocity_index, the index of the first joint velocity "
                "in the observation (one per action dimension), e.g. --set velocity_index=6 "
                "for Reacher-v5"
            )
        check_range(self, ("gain", "slow"), "> 0")
        check_range(self, ("noise",), ">= 0")
        check_ints(self, ("move_min", "move_max", "hold_min", "hold_max", "brake_max"))
        for what in ("move", "hold"):
            low, high = getattr(self, f"{what}_min"), getattr(self, f"{what}_max")
            if low > high:
                raise ValueError(f"StopGoConfig needs {what}_min <= {what}_max; got {low}, {high}")


class StopGoAgent(CollectorAgent):
    """Go bursts, braking to rest and holds (see the module docstring).

    Example:
        >>> agent = StopGoAgent(obs_dim=10, action_dim=2, seed=0, velocity_index=6)
        >>> agent.reset()
        >>> a = agent.act(np.zeros(10, dtype=np.float32))
        >>> a.dtype, a.shape, bool(np.all(np.abs(a) <= 1))
        (dtype('float32'), (2,), True)
    """

    name = "stopgo"
    config_class = StopGoConfig
    config: StopGoConfig

    def __init__(self, obs_dim: int, action_dim: int, seed: int, **config: Any) -> None:
        super().__init__(obs_dim, action_dim, seed, **config)
        c = self.config
        assert c.velocity_index is not None
        if c.velocity_index + action_dim > obs_dim:
            raise ValueError(
                f"stopgo reads velocities obs[{c.velocity_index}:{c.velocity_index + action_dim}] "
                f"but the observation has {obs_dim} entries; set velocity_index to the first "
                f"of the {action_dim} joint velocities (Reacher-v5: 6)"
            )
        self._rng = np.random.default_rng(seed)
        self._phase = _GO
        self._left = 0
        self._burst = np.zeros(action_dim, dtype=np.float64)

    def _start_go(self) -> None:
        c = self.config
        self._phase = _GO
        self._left = int(self._rng.integers(c.move_min, c.move_max + 1))
        self._burst = self._rng.uniform(-1.0, 1.0, self.action_dim)

    def reset(self) -> None:
        self._start_go()

    def act(self, obs: np.ndarray) -> np.ndarray:
        c = self.config
        if self._phase == _GO and self._left <= 0:
            self._phase, self._left = _STOP, c.brake_max
        v = np.asarray(obs, dtype=np.float64)[c.velocity_index:c.velocity_index + self.action_dim]
        if self._phase == _STOP and (np.all(np.abs(v) < c.slow) or self._left <= 0):
            self._phase = _HOLD
            self._left = int(self._rng.integers(c.hold_min, c.hold_max + 1))
        if self._phase == _HOLD and self._left <= 0:
            self._start_go()
        if self._phase == _GO:
            a = self._burst
        else:
            a = -c.gain * v + c.noise * self._rng.standard_normal(self.action_dim)
        self._left -= 1
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def _state_dict(self) -> dict[str, np.ndarray]:
        return {
            "rng": generator_to_array(self._rng),
            "phase": np.array(self._phase, dtype=np.int64),
            "left": np.array(self._left, dtype=np.int64),
            "burst": self._burst.copy(),
        }

    def _load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        generator_from_array(self._rng, state["rng"])
        self._phase = int(state["phase"])
        self._left = int(state["left"])
        self._burst = np.asarray(state["burst"], dtype=np.float64).copy()
