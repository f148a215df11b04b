"""``cem``: cross-entropy-method search over the task latent z of a frozen BFM.

Each generation draws ``population`` latents around a mean on the BFM's sphere,

    z_i = proj(mu + sigma * eps_i),  eps_i ~ N(0, I),  z_0 = mu (the mean itself is tried too),

plays each one for ``segment_steps`` env steps of real interaction (0: one whole episode)
and scores it by its mean reward per step. The ``elites`` best refit the distribution,

    mu <- proj((1 - alpha) mu + alpha mean(elites)),
    sigma <- max((1 - alpha) sigma + alpha std(elites), min_std),

with ``alpha = smoothing``. The mean starts at the zero-shot latent ``z_r = proj(E[r B])``
from the model's reward-labelled inference samples (``init="zero-shot"``, the default) or
at a random latent (``init="random"``, online labels only). ``z`` (what an evaluation
episode holds fixed) is the current mean.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from bfm_gym.adapters.base import Adapter, AdapterConfig, AdapterNeeds

__all__ = ["CEMAdapter", "CEMConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CEMConfig(AdapterConfig):
    """Settings of ``cem``; each is a ``--set key=value`` of ``bfm-gym adapt``."""

    population: int = 8
    """Latents per generation (the first is the current mean)."""
    elites: int = 2
    """Best latents of a generation that refit the search distribution."""
    segment_steps: int = 100
    """Env steps each latent is played and scored for; 0: one whole episode per latent."""
    init: Literal["zero-shot", "random"] = "zero-shot"
    """Initial mean: the zero-shot latent (needs dataset labels) or a random latent."""
    init_std: float = 0.5
    """Initial per-coordinate std of the search distribution (latents have norm sqrt(d))."""
    min_std: float = 0.05
    """Floor of the std, so the search never collapses."""
    smoothing: float = 0.7
    """Weight of the elite statistics in each refit (1: replace mean and std)."""

    def __post_init__(self) -> None:
        if self.population < 2 or not 1 <= self.elites <= self.population:
            raise ValueError(f"CEMConfig: population >= 2 and 1 <= elites <= population required; "
                             f"got population={self.population}, elites={self.elites}.")
        if self.segment_steps < 0:
            raise ValueError(f"CEMConfig.segment_steps must be >= 0; got {self.segment_steps}.")
        if self.init not in ("zero-shot", "random"):
            raise ValueError(f"CEMConfig.init must be 'zero-shot' or 'random'; got {self.init!r}.")
        if self.init_std <= 0 or self.min_std < 0 or not 0 < self.smoothing <= 1:
            raise ValueError("CEMConfig: init_std > 0, min_std >= 0 and 0 < smoothing <= 1 required.")


class CEMAdapter(Adapter):
    """Cross-entropy method over z; ``act`` returns the latent under evaluation."""

    name = "cem"
    config_class = CEMConfig
    needs = AdapterNeeds(labels="online", z_hold=1)

    @classmethod
    def needs_for(cls, config: CEMConfig) -> AdapterNeeds:  # type: ignore[override]
        if config.init == "zero-shot":
            return dataclasses.replace(cls.needs, labels="dataset+online")
        return cls.needs

    def __init__(self, bfm: Any, task: dict[str, Any], config: Any = None, seed: int = 0,
                 samples: Any = None) -> None:
        super().__init__(bfm, task, config, seed)
        c = self.config
        if c.init == "zero-shot":
            from bfm_gym.models.inference import reward_z

            if samples is None:
                raise ValueError("cem with init='zero-shot' needs the model's inference samples "
                                 "(samples=...); use --set init=random for online labels only.")
            self.mean = np.asarray(reward_z(bfm, samples, task.get("task"), goal=task.get("goal"),
                                            owner="cem"), np.float32)
        else:
            self.mean = np.asarray(bfm.sample_z(1, seed=seed)[0], np.float32)
        self.std = np.full(bfm.z_dim, c.init_std, np.float32)
        self.z = self.mean.copy()
        self.generation = 0
        self._sample_population()

    # -- ALGO LOGIC ----------------------------------------------------------------------
    def _sample_population(self) -> None:
        c = self.config
        eps = self.rng.standard_normal((c.population, self.bfm.z_dim)).astype(np.float32)
        candidates = self.mean + self.std * eps
        candidates[0] = self.mean
        self.population = np.asarray(self.bfm.project(candidates), np.float32)
        self.scores = np.zeros(c.population, np.float64)  # summed rewards
        self.counts = np.zeros(c.population, np.int64)  # env steps played
        self.index = 0  # latent under evaluation
        self.segment = 0  # its steps so far

    def _refit(self) -> None:
        c = self.config
        fitness = self.scores / np.maximum(self.counts, 1)
        elites = self.population[np.argsort(-fitness, kind="stable")[: c.elites]]
        a = c.smoothing
        mean = (1 - a) * self.mean + a * elites.mean(0)
        self.mean = np.asarray(self.bfm.project(mean.astype(np.float32)), np.float32)
        self.std = np.maximum((1 - a) * self.std + a * elites.std(0), c.min_std).astype(np.float32)
        self.z = self.mean.copy()
        self.generation += 1
        self._sample_population()

    def _next_candidate(self) -> None:
        self.index += 1
        self.segment = 0
        if self.index == self.config.population:
            self._refit()

    # -- the adapter protocol ------------------------------------------------------------
    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.population[self.index]

    def observe(self, transitions: Any) -> dict[str, float]:
        rewards = np.asarray(transitions.reward, np.float64)
        self.scores[self.index] += rewards.sum()
        self.counts[self.index] += len(rewards)
        self.segment += len(rewards)
        self.labels_used += len(rewards)
        if self.config.segment_steps and self.segment >= self.config.segment_steps:
            self._next_candidate()
        return {}

    def on_episode_end(self, episode_return: float) -> dict[str, float]:
        if self.config.segment_steps == 0:  # one latent per episode
            self._next_candidate()
        return {"generation": float(self.generation)}

    # -- persistence: numpy arrays only --------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        state = super().state_dict()
        state.update({
            "cem/mean": self.mean.copy(), "cem/std": self.std.copy(),
            "cem/population": self.population.copy(), "cem/scores": self.scores.copy(),
            "cem/counts": self.counts.copy(),
            "cem/counters": np.array([self.index, self.segment, self.generation], np.int64),
        })
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        self.mean = np.array(state["cem/mean"], np.float32)
        self.std = np.array(state["cem/std"], np.float32)
        self.population = np.array(state["cem/population"], np.float32)
        self.scores = np.array(state["cem/scores"], np.float64)
        self.counts = np.array(state["cem/counts"], np.int64)
        self.index, self.segment, self.generation = (int(v) for v in state["cem/counters"])
