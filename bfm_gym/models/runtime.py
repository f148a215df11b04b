"""Device, thread and mixed-precision choices for training, shared by every family (no global
state is changed on import)."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Literal

import torch

__all__ = [
    "autocast_context",
    "cpu_has_native_bf16",
    "free_cpu_cores",
    "make_adam",
    "resolve_amp",
    "resolve_device",
    "set_torch_threads",
    "usable_cores",
]

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else is passed to ``torch.device``.

    Raises:
        ValueError: ``cuda`` was asked for but is not available.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} was requested but torch.cuda.is_available() is False; use device='cpu' or 'auto'"
        )
    return dev


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def free_cpu_cores(own_threads: int = 0) -> int:
    """Cores this process may use minus the ones already busy (1-minute load average), at least 1.

    Args:
        own_threads: Threads of this process that are running and so counted in the load
            (a training asking whether more cores have become free); they are not "busy".
    """
    try:
        busy = round(max(os.getloadavg()[0] - own_threads, 0.0))
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        busy = 0
    return max(1, usable_cores() - busy)


def set_torch_threads(threads: int | Literal["auto"] | None = "auto") -> int:
    """Set ``torch.set_num_threads``; ``"auto"`` uses :func:`free_cpu_cores`, None leaves it as is.

    Returns:
        The number of intra-op threads now in use.
    """
    if threads is None:
        return torch.get_num_threads()
    n = free_cpu_cores() if threads == "auto" else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1 or 'auto', got {threads!r}")
    torch.set_num_threads(n)
    return n


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX tiles) and torch's kernels
    may use it; elsewhere bf16 is emulated and slower than fp32.

    torch's kernel level counts too: with ``ATEN_CPU_CAPABILITY=avx2`` (or ``default``) torch
    dispatches as on an AVX2-only CPU, and ``amp="auto"`` then picks fp32 as it would there
    (``make test-avx2`` runs the suite that way)."""
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    if not capability.startswith("AVX512"):
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_amp(amp: Literal["auto", "bf16", "off"], device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``FBConfig.amp`` on ``device`` (None = fp32).

    ``"auto"``: bf16 on CUDA devices that support it and on CPUs with native bf16, else fp32.
    """
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return None


def autocast_context(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[object]:
    """``torch.autocast(device.type, dtype)`` or a no-op when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def make_adam(groups: list[dict], device: torch.device, fused: bool) -> torch.optim.Adam:
    """Adam with the fused kernel when asked for and supported, else the foreach one."""
    if fused:
        try:
            return torch.optim.Adam(groups, fused=True)
        except (RuntimeError, ValueError) as err:  # pragma: no cover - depends on the build
            logger.info("fused Adam unavailable on %s (%s); using foreach", device, err)
    return torch.optim.Adam(groups, foreach=True)
