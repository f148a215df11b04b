"""Pieces shared by the latent-search adapters ReLA and LoLA (docs/algorithms.md#rela, #lola).

Both keep the reward weights ``z_r`` of the zero-shot inference fixed and value a
latent z by ``psi(s, pi(s, z), z)^T z_r`` aggregated pessimistically over the F heads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["BestEpisode", "aggregate_heads", "reward_weights"]

SELECT_MODES = ("mu", "best_episode")
"""Values of the ``select`` option of ReLA and LoLA (see :class:`BestEpisode`)."""


def reward_weights(bfm: Any, samples: Any, task: dict[str, Any], owner: str) -> np.ndarray:
    """The fixed reward weights ``z_r`` from dataset labels, ``(z_dim,)`` float32.

    This is the least-squares fit of the reward on the model's ``phi`` (for FB ``E[r(s')
    B(s')]``, the least-squares weights on ``phi = Cov(B)^{-1} B``; for HILP the regression
    itself), *not* projected: ``phi(s)^T z_r`` then estimates ``r(s)`` on the reward's own
    scale, so it can be summed with observed rewards. ``proj(z_r)`` is the zero-shot latent
    (the same z as :func:`bfm_gym.evaluation.zero_shot.task_z`). A goal task relabels the
    samples with the goal's reach reward, as ``task_z`` does.

    Args:
        bfm: The frozen model.
        samples: An :class:`~bfm_gym.evaluation.zero_shot.InferenceSet`, or None.
        task: ``{"task": name or None, "goal": (x, y) or None}``.
        owner: Adapter name for error messages.

    Raises:
        ValueError: No samples, samples of another domain, or no sample with a nonzero reward.
    """
    from bfm_gym.models.inference import reward_z

    if samples is None:
        raise ValueError(
            f"{owner} starts from the zero-shot latent and needs dataset samples (samples=...); "
            "run it through `adapt` with a model folder that ships inference samples."
        )
    return reward_z(bfm, samples, task.get("task"), goal=task.get("goal"), project=False,
                    owner=owner)


def aggregate_heads(values: torch.Tensor, pessimism: float) -> torch.Tensor:
    """Pessimistic ensemble value ``mean_k X_k - pessimism * unc`` over the first axis.

    ``unc = sum_{k != l} |X_k - X_l| / (E^2 - E)`` (docs/algorithms.md#pitfall-ensemble); with two
    heads and ``pessimism = 0.5`` this is ``min(X_1, X_2)``.

    Args:
        values: ``(E, ...)`` per-head values.
        pessimism: Weight of the disagreement penalty (0: plain mean).

    Returns:
        ``values.shape[1:]``.
    """
    e = values.shape[0]
    mean = values.mean(0)
    if e == 1 or pessimism == 0:
        return mean
    unc = (values.unsqueeze(0) - values.unsqueeze(1)).abs().sum((0, 1)) / (e * e - e)
    return mean - pessimism * unc


class BestEpisode:
    """Keeps the latent a real episode held and its return; evaluation takes the best.

    The ``select="best_episode"`` option of ReLA and LoLA (this project's addition, not the
    papers'): each real episode holds the adapter's latent as it was when the episode began,
    learning goes on as usual, and evaluation holds the played latent whose real episode
    returned the most. The returns are the real episodes' own, already within the budget; no
    extra env step is taken. Single episodes start from different states, so a lucky start
    can win: that is the price of taking no extra step.
    """

    def __init__(self, z_dim: int) -> None:
        self.z_dim = int(z_dim)
        self.played: list[np.ndarray] = []
        """Latents held by finished real episodes."""
        self.returns: list[float] = []
        """Their real episode returns, in the same order."""

    def add(self, z: np.ndarray, episode_return: float) -> None:
        """Records that a finished episode held ``z`` and returned ``episode_return``."""
        self.played.append(np.array(z, dtype=np.float32))
        self.returns.append(float(episode_return))

    def best(self, default: np.ndarray) -> np.ndarray:
        """The played latent with the highest return (the first on ties), else ``default``."""
        if not self.played:
            return np.array(default, dtype=np.float32)
        return self.played[int(np.argmax(self.returns))].copy()

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"best_episode/played": np.array(self.played, dtype=np.float32).reshape(-1, self.z_dim),
                "best_episode/returns": np.array(self.returns, dtype=np.float64)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.played = [np.array(z, dtype=np.float32)
                       for z in state.get("best_episode/played", np.zeros((0, self.z_dim)))]
        self.returns = [float(x) for x in state.get("best_episode/returns", np.zeros(0))]
