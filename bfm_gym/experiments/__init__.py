"""Experiments: adaptation runs (and, later, comparisons across adapters)."""

from bfm_gym.experiments.adapt import AdaptResult, adapt

__all__ = ["AdaptResult", "adapt"]
