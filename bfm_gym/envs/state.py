"""Simulator state capture and restore.

A *state* is a float64 vector holding everything MuJoCo needs to continue a
trajectory bit for bit: time, qpos, qvel, actuator activations, the solver's
warm start and the control last applied (``mjSTATE_FULLPHYSICS | mjSTATE_WARMSTART
| mjSTATE_CTRL``). Rewards that depend on the control (maze small-control factor)
are therefore reproducible from a stored state alone. Applied external forces
(``qfrc_applied``/``xfrc_applied``) are not part of it: bfm_gym envs never set them.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

STATE_SPEC = int(
    mujoco.mjtState.mjSTATE_FULLPHYSICS
    | mujoco.mjtState.mjSTATE_WARMSTART
    | mujoco.mjtState.mjSTATE_CTRL
)


def state_size(physics: Any) -> int:
    """Returns the length of a state vector for this physics' model."""
    return int(mujoco.mj_stateSize(physics.model.ptr, STATE_SPEC))


def get_state(physics: Any) -> np.ndarray:
    """Returns a copy of the simulator state, shape ``(state_size,)``, float64."""
    out = np.empty(state_size(physics), dtype=np.float64)
    mujoco.mj_getState(physics.model.ptr, physics.data.ptr, out, STATE_SPEC)
    return out


def set_state(physics: Any, state: Any, domain: str = "this domain") -> None:
    """Restores ``state`` and recomputes derived quantities (``mj_forward``).

    Raises:
        ValueError: ``state`` is not a finite 1-D vector of this model's state size
            (e.g. it was captured in another domain).
    """
    arr = np.asarray(state)
    expected = state_size(physics)
    if arr.ndim != 1 or arr.shape[0] != expected:
        raise ValueError(
            f"A {domain} state is a 1-D vector of {expected} floats; got shape "
            f"{arr.shape}. Was it captured from another domain? Capture states with "
            "env.unwrapped.get_state() on the same domain."
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"A state must hold floats; got dtype {arr.dtype}.")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("The state holds NaN or inf values; it cannot be restored.")
    mujoco.mj_setState(physics.model.ptr, physics.data.ptr, arr, STATE_SPEC)
    mujoco.mj_forward(physics.model.ptr, physics.data.ptr)


# -- Gymnasium MuJoCo envs (MujocoEnv: model, data) ----------------------------------------


def has_sim_state(unwrapped: Any) -> bool:
    """Whether ``unwrapped`` is a MuJoCo env whose state bfm_gym can capture and restore."""
    import mujoco

    return (isinstance(getattr(unwrapped, "model", None), mujoco.MjModel)
            and isinstance(getattr(unwrapped, "data", None), mujoco.MjData)
            and callable(getattr(unwrapped, "_get_obs", None)))


def get_mj_state(model: Any, data: Any) -> np.ndarray:
    """Full MuJoCo state of ``data`` (spec :data:`bfm_gym.envs.state.STATE_SPEC`), float64."""
    out = np.empty(mujoco.mj_stateSize(model, STATE_SPEC), dtype=np.float64)
    mujoco.mj_getState(model, data, out, STATE_SPEC)
    return out


def set_mj_state(model: Any, data: Any, state: Any, *, what: str = "this env") -> None:
    """Restores a :func:`get_mj_state` vector and runs ``mj_forward``.

    Raises:
        ValueError: Wrong size (a state of another env), non-float or non-finite values.
    """
    arr = np.asarray(state)
    expected = int(mujoco.mj_stateSize(model, STATE_SPEC))
    if arr.ndim != 1 or arr.shape[0] != expected or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"A {what} state is a 1-D float vector of {expected} values; got shape {arr.shape} "
            f"({arr.dtype}). Was it captured on another env? Capture states with get_state() "
            "on the same env."
        )
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("The state holds NaN or inf values; it cannot be restored.")
    mujoco.mj_setState(model, data, arr, STATE_SPEC)
    mujoco.mj_forward(model, data)
