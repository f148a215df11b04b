"""Deprecated alias: the renderer moved to :mod:`bfm_gym.evaluation.video` (kept for one release)."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["GIF_MAX_FPS", "VideoError", "render_rollout", "write_video"]  # noqa: F822


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bfm_gym.evaluation import video

        warnings.warn(f"bfm_gym.wrappers.video.{name} is deprecated; import it from bfm_gym.evaluation.video",
                      DeprecationWarning, stacklevel=2)
        return getattr(video, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
