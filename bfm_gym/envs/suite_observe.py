"""Fast flat observations of the dm_control suite domains (walker, cheetah, quadruped).

dm_control builds an observation as an ordered dict whose entries read the simulator
through named indexing (``physics.named.data.xmat[1:, ['xx', 'xz']]``, sensor names looked
up per call); flattening it costs about as much as a tenth of a walker step. The functions
here read the same numbers through integer indices computed once per simulator, and
return exactly what flattening ``task.get_observation(physics)`` to float32 gives, bit for
bit (``tests/envs/test_envs.py`` checks every domain after resets, steps and state
restores). Each is a domain's ``observe`` (:class:`~bfm_gym.envs.domains.Domain`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["cheetah_observe", "quadruped_observe", "walker_observe"]

Reader = Callable[[Any], np.ndarray]
"""``read(physics.data) -> float32 observation``, built for one simulator's model."""


class _PerModel:
    """``observe(physics)`` that builds its index arrays on the first call for each physics."""

    def __init__(self, build: Callable[[Any], Reader]) -> None:
        self._build = build
        self._readers: weakref.WeakKeyDictionary[Any, Reader] = weakref.WeakKeyDictionary()

    def __call__(self, physics: Any) -> np.ndarray:
        read = self._readers.get(physics)
        if read is None:
            read = self._readers[physics] = self._build(physics)
        return read(physics.data)


def _walker(physics: Any) -> Reader:
    # orientations: the xx and xz entries of every body's rotation matrix but the world's;
    # height: the torso's z; velocity: qvel
    torso = physics.model.name2id("torso", "body")

    def read(data: Any) -> np.ndarray:
        xmat = data.xmat
        return np.concatenate((xmat[1:, [0, 2]].ravel(), [data.xpos[torso, 2]],
                               data.qvel)).astype(np.float32)

    return read


def _cheetah(physics: Any) -> Reader:
    # position: qpos without the root's x; velocity: qvel
    def read(data: Any) -> np.ndarray:
        return np.concatenate((data.qpos[1:], data.qvel)).astype(np.float32)

    return read


def _sensor_index(model: Any, ids: Any) -> np.ndarray:
    """sensordata indices of the sensors ``ids``, in that order."""
    return np.concatenate([np.arange(model.sensor_adr[i], model.sensor_adr[i] + model.sensor_dim[i])
                           for i in ids]).astype(np.intp)


def _sensors_of_types(model: Any, *types: int) -> np.ndarray:
    """Ids of the sensors of ``types``, in id order (as dm_control's quadruped looks them up by name)."""
    return np.flatnonzero(np.isin(model.sensor_type, types))


def _quadruped(physics: Any) -> Reader:
    # egocentric state (hinge qpos, hinge qvel, act), torso velocity (velocimeter), torso
    # upright (the torso's zz), IMU (gyro and accelerometer), arcsinh of the toes'
    # force/torque sensors: dm_control's _common_observations, in its order
    import mujoco

    model = physics.model
    hinges = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)
    qpos, qvel = model.jnt_qposadr[hinges], model.jnt_dofadr[hinges]
    velocity = _sensor_index(model, [model.name2id("velocimeter", "sensor")])
    torso = model.name2id("torso", "body")
    sens = mujoco.mjtSensor
    imu = _sensor_index(model, _sensors_of_types(model, sens.mjSENS_GYRO, sens.mjSENS_ACCELEROMETER))
    force_torque = _sensor_index(model, _sensors_of_types(model, sens.mjSENS_FORCE, sens.mjSENS_TORQUE))

    def read(data: Any) -> np.ndarray:
        sensors = data.sensordata
        return np.concatenate((data.qpos[qpos], data.qvel[qvel], data.act, sensors[velocity],
                               [data.xmat[torso, 8]], sensors[imu],
                               np.arcsinh(sensors[force_torque]))).astype(np.float32)

    return read


walker_observe = _PerModel(_walker)
"""Flat float32 walker observation: orientations (14), height (1), velocity (9)."""
cheetah_observe = _PerModel(_cheetah)
"""Flat float32 cheetah observation: position (8), velocity (9)."""
quadruped_observe = _PerModel(_quadruped)
"""Flat float32 quadruped observation: egocentric state, torso velocity, torso upright, IMU,
force/torque (the walk and run tasks' observation)."""
