"""The FB name of :mod:`bfm_gym.models.runtime` (device, threads, mixed precision), which every
family shares; import from there."""

from bfm_gym.models import runtime as _runtime
from bfm_gym.models.runtime import *  # noqa: F403 - the same names, for code written before the move

__all__ = list(_runtime.__all__)
