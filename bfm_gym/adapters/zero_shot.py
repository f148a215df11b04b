"""``zero-shot``: the FB latent inferred once, never changed (the reference level).

``z = proj(E[r(s') B(s')])`` over the model's shipped inference samples relabelled
with the task reward (docs/algorithms.md#zero-shot-inference; with many labels this is OpTI-BFM's "oracle"),
or ``proj(B(g))`` for a goal, or, with ``online_labels > 0``, from the first N
online-labelled transitions (acting with a random z until then).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bfm_gym.adapters.base import Adapter, AdapterConfig, AdapterNeeds
from bfm_gym.models.inference import online_z


@dataclasses.dataclass(frozen=True, kw_only=True)
class ZeroShotConfig(AdapterConfig):
    online_labels: int = 0
    """0: infer z from dataset labels; N > 0: from the first N online transitions."""
    max_samples: int = 50_000
    """Dataset samples used for inference (all shipped ones if fewer)."""

    def __post_init__(self) -> None:
        if self.online_labels < 0 or self.max_samples < 1:
            raise ValueError("ZeroShotConfig: online_labels must be >= 0 and max_samples >= 1.")


class ZeroShotAdapter(Adapter):
    """Zero-shot FB inference; ``act`` always returns the same z."""

    name = "zero-shot"
    config_class = ZeroShotConfig
    needs = AdapterNeeds(labels="dataset", z_hold=None)

    def __init__(self, bfm: Any, task: dict[str, Any], config: Any = None, seed: int = 0,
                 samples: Any = None) -> None:
        super().__init__(bfm, task, config, seed)
        self._buffer: list[tuple[np.ndarray, np.ndarray]] = []
        if self.config.online_labels > 0:
            self.z = np.asarray(bfm.sample_z(1, seed=seed)[0], dtype=np.float32)
            return
        from bfm_gym.models.inference import reward_z

        if samples is None:
            raise ValueError("zero-shot with dataset labels needs inference samples (samples=...).")
        self.z = reward_z(bfm, samples, task.get("task"), goal=task.get("goal"), owner="zero-shot")

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.z

    def observe(self, transitions: Any) -> dict[str, float]:
        n = self.config.online_labels
        if n == 0 or sum(len(r) for _, r in self._buffer) >= n:
            return {}
        self._buffer.append((np.asarray(transitions.next_obs), np.asarray(transitions.reward)))
        self.labels_used = min(n, sum(len(r) for _, r in self._buffer))
        if sum(len(r) for _, r in self._buffer) >= n:
            next_obs = np.concatenate([o for o, _ in self._buffer])[:n]
            rewards = np.concatenate([r for _, r in self._buffer])[:n].astype(np.float32)
            z = online_z(self.bfm, next_obs, rewards)
            if z is not None:
                self.z = z
        return {}
