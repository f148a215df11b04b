"""What every benchmark script shares: the machine it ran on, the command that reproduces
it, and an atomic JSON write (a killed benchmark never leaves half a result file)."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

from bfm_gym.utils.io import write_json_atomic
from bfm_gym.utils.blas import blas_threads
from bfm_gym.utils.machine import blas_core, cpu_kind


def machine(**extra: Any) -> dict[str, Any]:
    """CPU count, kind (AVX2 / AVX-512 / native bf16), OpenBLAS kernel family and thread count, platform and Python
    version, plus ``extra`` fields (threads, ...)."""
    return {"cpus": os.cpu_count(), "cpu_kind": cpu_kind(), "blas_core": blas_core(), "blas_threads": blas_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(), **extra}


def command() -> str:
    """The command line that ran this benchmark, quoted so that it can be pasted."""
    return shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def write_report(path: str | Path, report: dict[str, Any]) -> Path:
    """Writes ``report`` as indented JSON to ``path`` through a temporary file."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, report)
    print(f"wrote {out}")
    return out


def finish_plot(fig: Any, ax: Any, path: str | Path, *, xlabel: str, ylabel: str, title: str,
                legend_size: int = 7) -> None:
    """Labels ``ax``, adds the legend, and writes ``fig`` to ``path`` (PNG, 110 dpi)."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def adapter_gains(compare: Path | None) -> dict[str, dict[str, float]]:
    """``{adapter: {domain-task: paired gain}}`` from a multi-model comparison's families.json."""
    if compare is None:
        return {}
    table = json.loads((compare / "families.json").read_text())
    out: dict[str, dict[str, float]] = {}
    for adapter, per_model in table.get("gains", {}).items():
        if adapter == "zero-shot":
            continue
        for label, cell in per_model.items():
            if label != "all":
                out.setdefault(adapter, {}).update(cell.get("per_task") or {})
    return out
