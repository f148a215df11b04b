"""Figures written by the library (learning curves, comparison plots, coverage): headless
matplotlib and one way of saving, so that every PNG is written the same way."""

from __future__ import annotations

import os
from typing import Any

from bfm_gym.utils.io import atomic_path

__all__ = ["pyplot", "save_figure"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed); imported on
    first use, so the library does not load matplotlib until it draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Lays ``fig`` out tightly, writes it to ``path`` as a 110 dpi PNG through a temporary file
    (a killed run never leaves half an image) and closes it. The image grows to hold every label
    (``bbox_inches="tight"``): a label longer than its axes is not cut at the edge."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)
