"""The FB name of :mod:`bfm_gym.models.runtime` (device, threads, mixed precision), which every
family shares; import from there."""

from bfm_gym.models.runtime import (
    autocast_context,
    cpu_has_native_bf16,
    free_cpu_cores,
    resolve_amp,
    resolve_device,
    set_torch_threads,
)

__all__ = [
    "autocast_context",
    "cpu_has_native_bf16",
    "free_cpu_cores",
    "resolve_amp",
    "resolve_device",
    "set_torch_threads",
]
