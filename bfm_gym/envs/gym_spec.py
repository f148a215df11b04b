"""What bfm_gym needs of a Gymnasium env, and what it records about one.

The supported spaces (a ``Box`` action space with finite bounds; a flat ``Box`` observation, or
a ``Dict`` of flat ``Box`` entries flattened in a recorded key order), the checks that refuse
anything else with a message naming what is supported, :class:`EnvInfo` (what a dataset or a
model records about the env it came from) and :func:`make_raw_env` (``gym.make`` with clear
errors). The env adapter itself is :mod:`bfm_gym.envs.gym_env`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["SUPPORTED_SPACES", "EnvInfo", "check_spaces", "flatten_order", "make_raw_env",
           "native_dm_control_keys"]

SUPPORTED_SPACES = (
    "bfm_gym supports a Box action space with finite bounds and a flat Box observation "
    "(or a Dict of flat Box observations, flattened in a recorded order)"
)


# -- spaces -------------------------------------------------------------------------------


def check_spaces(observation_space: gym.Space, action_space: gym.Space, *, what: str) -> None:
    """Raises ``ValueError`` unless the spaces fit a BFM (see the module docstring).

    Args:
        observation_space: The env's (or dataset's) observation space.
        action_space: The env's (or dataset's) action space.
        what: Names the env or dataset in the message (``"env 'CartPole-v1'"``).
    """
    if not isinstance(action_space, gym.spaces.Box):
        kind = type(action_space).__name__
        raise ValueError(
            f"{what} has a {kind} action space ({action_space}); {SUPPORTED_SPACES}. BFM "
            "policies output continuous actions: use a continuous-control env (e.g. "
            "Pendulum-v1, the MuJoCo envs such as Hopper-v5), or a continuous variant of it "
            "(e.g. LunarLander-v3 with continuous=True)."
        )
    if action_space.shape is None or len(action_space.shape) != 1:
        raise ValueError(
            f"{what} has an action space of shape {action_space.shape}; {SUPPORTED_SPACES} "
            "(a 1-D action vector). Flatten the actions with a wrapper first."
        )
    if not (np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
        raise ValueError(
            f"{what} has unbounded actions ({action_space}); {SUPPORTED_SPACES}. Give the "
            "env finite bounds (gymnasium.wrappers.ClipAction / RescaleAction)."
        )
    spaces = (
        dict(observation_space.spaces) if isinstance(observation_space, gym.spaces.Dict)
        else {"": observation_space}
    )
    for key, space in spaces.items():
        where = f"observation {key!r}" if key else "observation"
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(
                f"{what} has a {type(space).__name__} {where} space ({space}); "
                f"{SUPPORTED_SPACES}. Map it to a Box with an observation wrapper first."
            )
        shape = tuple(space.shape or ())
        if len(shape) >= 2 and (len(shape) == 3 or space.dtype == np.uint8):
            raise ValueError(
                f"{what} has image observations ({where} of shape {shape}, {space.dtype}); "
                f"{SUPPORTED_SPACES}. BFMs here learn from state vectors: use the env's state "
                "observations (MuJoCo envs give them by default; dm_control without pixels), "
                "or an observation wrapper that turns images into a flat feature vector."
            )
        if len(shape) > 1:
            raise ValueError(
                f"{what} has a {where} of shape {shape}; {SUPPORTED_SPACES}. Flatten it with "
                "gymnasium.wrappers.FlattenObservation first."
            )


def native_dm_control_keys(unwrapped: Any) -> list[str] | None:
    """dm_control's own observation key order for a Shimmy dm_control env (the order of
    ``task.get_observation``), or None for any other env."""
    dm_env = getattr(unwrapped, "_env", None)
    spec_fn = getattr(dm_env, "observation_spec", None)
    if type(unwrapped).__name__ != "DmControlCompatibilityV0" or not callable(spec_fn):
        return None
    spec = spec_fn()
    return list(spec) if isinstance(spec, dict) else None


def flatten_order(env: gym.Env, obs_keys: Sequence[str] | None = None) -> list[str] | None:
    """The key order that flattens ``env``'s Dict observations (None for a Box).

    ``obs_keys`` (e.g. recorded in a model) wins; else a Shimmy dm_control env's native
    order; else the order of the Dict space.

    Raises:
        ValueError: ``obs_keys`` do not match the space's keys.
    """
    space = env.observation_space
    if not isinstance(space, gym.spaces.Dict):
        if obs_keys:
            raise ValueError(
                f"Observation keys {list(obs_keys)} were recorded but the env's observation "
                f"space is {space}, not a Dict: this is not the env the keys were recorded on."
            )
        return None
    keys = list(space.spaces)
    if obs_keys is not None:
        if sorted(obs_keys) != sorted(keys):
            raise ValueError(
                f"Recorded observation keys {list(obs_keys)} do not match the env's keys {keys}."
            )
        return list(obs_keys)
    return native_dm_control_keys(env.unwrapped) or keys


# -- what a dataset or model records about its env ------------------------------------------


@dataclasses.dataclass(frozen=True)
class EnvInfo:
    """The Gymnasium env a dataset was collected on / a model was trained on.

    Attributes:
        id: Gymnasium id (``"Hopper-v5"``).
        kwargs: Keyword arguments of ``gym.make`` (JSON-safe).
        obs_keys: Flattening order of a Dict observation (None for a Box).
        observation_space: The env's own observation space, as text (for messages).
        action_space: The env's action space, as text.
        action_low: Action lower bounds (the BFM's ``[-1, 1]`` is rescaled to them).
        action_high: Action upper bounds.
        max_episode_steps: Episode cap the data was collected with (None: the env's own).
        has_state: Whether simulator states were recorded (MuJoCo envs).
    """

    id: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    obs_keys: list[str] | None = None
    observation_space: str = ""
    action_space: str = ""
    action_low: list[float] | None = None
    action_high: list[float] | None = None
    max_episode_steps: int | None = None
    has_state: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``from_dict`` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvInfo:
        """Reads :meth:`to_dict`'s output (unknown keys are ignored: newer writers)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def rescale_actions(self, action: np.ndarray) -> np.ndarray:
        """``[-1, 1]`` actions (as datasets store them) in the env's bounds, float64."""
        a = np.asarray(action, dtype=np.float64)
        if self.action_low is None or self.action_high is None:
            return a
        low, high = np.asarray(self.action_low), np.asarray(self.action_high)
        return low + (a + 1.0) * (high - low) / 2.0


def make_raw_env(env_id: str, kwargs: dict[str, Any], max_episode_steps: int | None,
                 render_mode: str | None = None) -> gym.Env:
    """``gym.make(env_id, **kwargs)`` with the cap and render mode; an unknown id or bad kwargs
    give a ``ValueError`` naming the closest registered ids / the kwargs."""
    import difflib

    if env_id.startswith("dm_control/"):
        import shimmy  # noqa: F401 - registers the dm_control/* ids
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"{env_id!r} is not a registered Gymnasium id.{hint} Import the package that "
            "registers it first (or pass a built env), and check `gymnasium.pprint_registry()`."
        )
    extra: dict[str, Any] = dict(kwargs)
    if max_episode_steps is not None:
        extra["max_episode_steps"] = int(max_episode_steps)
    if render_mode is not None:
        extra["render_mode"] = render_mode
    try:
        return gym.make(env_id, **extra)
    except TypeError as exc:
        raise ValueError(f"gym.make({env_id!r}, **{kwargs}) failed: {exc}. Check --env-kwargs.") from exc
