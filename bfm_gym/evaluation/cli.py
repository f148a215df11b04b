"""Deprecated: ``bfm-gym eval``'s logic moved to :mod:`bfm_gym.cli.eval` (alias kept for one release)."""

from __future__ import annotations

import warnings

from bfm_gym.cli.eval import run_eval

__all__ = ["run_eval"]

warnings.warn("bfm_gym.evaluation.cli is deprecated; import run_eval from bfm_gym.cli.eval",
              DeprecationWarning, stacklevel=2)
