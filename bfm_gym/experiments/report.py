"""Deprecated alias of :mod:`bfm_gym.experiments.compare.report` (the plots and
``report.md`` of a comparison); it goes in the next release."""

from __future__ import annotations

import warnings

from bfm_gym.experiments.compare.report import write_report

__all__ = ["write_report"]

warnings.warn("bfm_gym.experiments.report moved to bfm_gym.experiments.compare.report; "
              "import write_report from there (this alias goes in the next release).",
              DeprecationWarning, stacklevel=2)
