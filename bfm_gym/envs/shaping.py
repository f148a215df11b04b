"""Fast scalar reward shaping and simulator accessors for task rewards.

``tolerance`` has the semantics of ``dm_control.utils.rewards.tolerance`` for
scalars, in plain ``math`` (about 20x faster than the numpy version, which
matters when millions of stored states are relabelled). Accessors read MuJoCo
arrays by cached integer index instead of dm_control's named indexing.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["body_id", "sensor_slice", "tolerance"]


def _sigmoid(x: float, value_at_1: float, sigmoid: str) -> float:
    if sigmoid == "gaussian":
        scale = math.sqrt(-2.0 * math.log(value_at_1))
        return math.exp(-0.5 * (x * scale) ** 2)
    if sigmoid == "linear":
        scaled = x * (1.0 - value_at_1)
        return 1.0 - scaled if abs(scaled) < 1 else 0.0
    if sigmoid == "quadratic":
        scaled = x * math.sqrt(1.0 - value_at_1)
        return 1.0 - scaled * scaled if abs(scaled) < 1 else 0.0
    raise ValueError(f"Unknown sigmoid {sigmoid!r}; use gaussian, linear or quadratic.")


def tolerance(
    x: float,
    bounds: tuple[float, float] = (0.0, 0.0),
    margin: float = 0.0,
    sigmoid: str = "gaussian",
    value_at_margin: float = 0.1,
) -> float:
    """1 inside ``bounds``, decaying by ``sigmoid`` to ``value_at_margin`` at ``margin``.

    Same as ``dm_control.utils.rewards.tolerance`` for a scalar ``x`` (gaussian,
    linear and quadratic sigmoids).
    """
    lower, upper = bounds
    x = float(x)
    if lower <= x <= upper:
        return 1.0
    if margin == 0:
        return 0.0
    d = (lower - x if x < lower else x - upper) / margin
    return _sigmoid(d, value_at_margin, sigmoid)


def _ids(physics: Any) -> dict:
    cache = getattr(physics, "_bfm_gym_ids", None)
    if cache is None:
        cache = {}
        physics._bfm_gym_ids = cache
    return cache


def body_id(physics: Any, name: str) -> int:
    """Integer id of body ``name`` (cached on the physics object)."""
    cache = _ids(physics)
    key = ("body", name)
    if key not in cache:
        cache[key] = int(physics.model.name2id(name, "body"))
    return cache[key]


def sensor_slice(physics: Any, name: str) -> slice:
    """Slice of ``data.sensordata`` holding sensor ``name`` (cached)."""
    cache = _ids(physics)
    key = ("sensor", name)
    if key not in cache:
        i = int(physics.model.name2id(name, "sensor"))
        adr = int(physics.model.sensor_adr[i])
        cache[key] = slice(adr, adr + int(physics.model.sensor_dim[i]))
    return cache[key]
