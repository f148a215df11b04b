"""Evaluation: run a BFM policy on a task, zero-shot inference from dataset samples."""

from bfm_gym.evaluation.rollout import EvalResult, rollout_returns, summarize
from bfm_gym.evaluation.zero_shot import InferenceSet, evaluate_zero_shot, task_z

__all__ = ["EvalResult", "InferenceSet", "evaluate_zero_shot", "rollout_returns", "summarize", "task_z"]
