"""What machine a figure was measured on: CPU model and kind, library versions.

Rollouts amplify float differences (an MLP's last bit moves a joint, the episode drifts), so
the same evaluation command can give returns a few percent apart on two CPUs or two MuJoCo
builds. Model cards and benchmark JSONs record :func:`machine_summary` next to their numbers.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["blas_core", "cpu_flags", "cpu_kind", "cpu_model", "machine_summary", "numerics_kind"]


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    """The ``flags`` of the first CPU in ``/proc/cpuinfo`` (empty off Linux)."""
    return set((_cpuinfo_field("flags") or "").split())


def cpu_kind() -> str:
    """``"avx512_bf16"`` (native bf16 matmul), ``"avx512"``, ``"avx2"`` or ``"other"``."""
    flags = cpu_flags()
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else "other"


def blas_core() -> str | None:
    """The kernel family numpy's OpenBLAS chose for this CPU (e.g. ``"SkylakeX"``,
    ``"Haswell"``; ``OPENBLAS_CORETYPE`` overrides it), or None when numpy does not link a
    ``scipy-openblas`` that reports it. Two CPUs of one :func:`cpu_kind` can run different
    kernels, and a policy's numpy forward rounds accordingly."""
    import ctypes

    from bfm_gym.utils.blas import openblas_function

    fn = openblas_function("get_corename")
    if fn is None:
        return None
    fn.restype = ctypes.c_char_p
    core = fn()
    return core.decode() if core else None


def numerics_kind() -> str:
    """:func:`cpu_kind` with the OpenBLAS kernel family when known, e.g.
    ``"avx512_bf16, OpenBLAS SkylakeX"``: what decides how a rollout's floats round, as far as
    this machine can tell. Runs record it per episode (``cpu_kind`` in adapt records)."""
    core = blas_core()
    return f"{cpu_kind()}, OpenBLAS {core}" if core else cpu_kind()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else :func:`platform.processor`."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_summary() -> dict[str, Any]:
    """``{"cpu_model", "cpu_kind", "blas_core", "blas_threads", "torch_cpu_capability", "torch",
    "mujoco", "numpy"}`` (``blas_threads``: numpy's OpenBLAS thread count now,
    :func:`bfm_gym.utils.blas.blas_threads`)."""
    import torch

    from bfm_gym.utils.blas import blas_threads

    return {
        "cpu_model": cpu_model(),
        "cpu_kind": cpu_kind(),
        "blas_core": blas_core(),
        "blas_threads": blas_threads(),
        "torch_cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "torch": torch.__version__,
        "mujoco": _version("mujoco"),
        "numpy": _version("numpy"),
    }
