"""Experiments: adaptation runs and comparisons across adapters at equal budgets."""

from bfm_gym.experiments.adapt import AdaptResult, adapt
from bfm_gym.experiments.compare import CompareResult, compare

__all__ = ["AdaptResult", "CompareResult", "adapt", "compare"]
