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

__all__ = ["cpu_flags", "cpu_kind", "cpu_model", "machine_summary"]


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


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else :func:`platform.processor`."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_summary() -> dict[str, Any]:
    """``{"cpu_model", "cpu_kind", "torch_cpu_capability", "torch", "mujoco", "numpy"}``."""
    import torch

    return {
        "cpu_model": cpu_model(),
        "cpu_kind": cpu_kind(),
        "torch_cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "torch": torch.__version__,
        "mujoco": _version("mujoco"),
        "numpy": _version("numpy"),
    }
