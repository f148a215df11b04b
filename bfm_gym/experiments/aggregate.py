"""Deprecated alias of :mod:`bfm_gym.evaluation.aggregate` (IQM, stratified-bootstrap
intervals, performance profiles); it goes in the next release."""

from __future__ import annotations

import warnings

from bfm_gym.evaluation.aggregate import (
    STATISTICS,
    Interval,
    bootstrap_band,
    bootstrap_replicates,
    iqm,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap,
)

__all__ = ["STATISTICS", "Interval", "bootstrap_band", "bootstrap_replicates", "iqm", "performance_profile",
           "probability_of_improvement", "stratified_bootstrap"]

warnings.warn("bfm_gym.experiments.aggregate moved to bfm_gym.evaluation.aggregate; import from there "
              "(this alias goes in the next release).", DeprecationWarning, stacklevel=2)
