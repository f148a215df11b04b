"""The machine facts a speed figure needs: CPU kind (AVX2 only, AVX-512, native bf16), model
name, caches, thread count and load (a benchmark on a shared machine says so)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from _report import machine


def cpu_flags() -> set[str]:
    """The ``flags`` of the first CPU in /proc/cpuinfo (empty off Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_kind() -> str:
    """``"avx512_bf16"`` (native bf16 matmul), ``"avx512"``, ``"avx2"`` or ``"other"``."""
    flags = cpu_flags()
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else "other"


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cache(level: int) -> str | None:
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(root.glob("index*")) if root.is_dir() else []:
        try:
            if int((index / "level").read_text()) == level and (
                (index / "type").read_text().strip() in ("Data", "Unified")
            ):
                return (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
    return None


def busy_processes(min_cpu_pct: float = 50.0) -> int | None:
    """How many other processes used more than ``min_cpu_pct`` % of a core (``ps``), or None."""
    import subprocess

    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu"], capture_output=True, text=True,
                             timeout=5).stdout.splitlines()[1:]
    except (OSError, subprocess.SubprocessError):
        return None
    me = os.getpid()
    return sum(1 for row in out if (p := row.split()) and int(p[0]) != me
               and float(p[1]) > min_cpu_pct)


def machine_info(**extra: Any) -> dict[str, Any]:
    """:func:`_report.machine` plus CPU kind, model, caches, load average and busy processes."""
    return machine(
        cpu_kind=cpu_kind(),
        cpu_model=_cpu_model(),
        l2_cache_per_core=_cache(2),
        l3_cache=_cache(3),
        load_average_at_start=[round(x, 2) for x in os.getloadavg()],
        other_busy_processes_at_start=busy_processes(),
        **extra,
    )
