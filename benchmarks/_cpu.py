"""The machine facts a speed figure needs: CPU kind (AVX2 only, AVX-512, native bf16), model
name, caches, thread count and load (a benchmark on a shared machine says so)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from _report import machine

from bfm_gym.utils.machine import cpu_flags, cpu_kind, cpu_model

__all__ = ["cpu_flags", "cpu_kind", "machine_info", "runnable_tasks"]


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


def runnable_tasks() -> int | None:
    """Tasks running or waiting for a core right now (``/proc/loadavg``), this one included."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def machine_info(**extra: Any) -> dict[str, Any]:
    """:func:`_report.machine` plus CPU kind, model, caches, load average and runnable tasks."""
    return machine(
        cpu_kind=cpu_kind(),
        cpu_model=cpu_model(),
        l2_cache_per_core=_cache(2),
        l3_cache=_cache(3),
        load_average_at_start=[round(x, 2) for x in os.getloadavg()],
        runnable_tasks_at_start=runnable_tasks(),
        **extra,
    )
