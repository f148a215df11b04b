"""``opti``: OpTI-BFM, optimistic task inference from online rewards only.

Rewards are regressed on ``phi(s') = Cov(B)^{-1} B(s')`` online
(:class:`~bfm_gym.adapters.bandit.LinearBandit`); every ``reselect_every`` steps the
latent is chosen optimistically among candidates drawn in the confidence ellipsoid
(UCB over the F heads' successor features at the current state), or drawn from the
posterior (Thompson sampling); docs/algorithms.md#opti-bfm. 128 candidates, lambda 1,
no forgetting, the kappa gate and the update rule match opti-bfm's code
(benchmarks/opti_official_harness.py, tests/adapters/test_opti_official.py). Three
defaults differ from opti-bfm's README run (beta 0.1, per-step reselection, its
candidate geometry), measured on the shipped walker model (4 tasks, 10 episodes;
docs/adapters.md, "OpTI-BFM against the official code"): beta 1 with reselection every
10 steps in the exact confidence ellipsoid ends at -20 % of the zero-shot level
(median over tasks, 3 seeds), the paper's setting with opti-bfm's geometry at -44 %
and opti-bfm's geometry at beta 1 every 10 steps at -49 % (2 seeds each).
``beta=0.1, reselect_every=1, geometry="official"`` gives the paper's run.

Warm start (opti-bfm's ``zsrl``): with ``warm_start = N > 0`` the estimate is first
batch-updated with N reward-labelled dataset samples (the model's inference samples),
or, for a goal task, with the single pair ``(phi(g), 1)``; the adapter then also needs
dataset labels. They enter at unit noise also in TS mode (as opti-bfm: not weighted
1/sigma^2 like the online labels). ``labels_used`` counts online labels only.

Speed: for an FB model on CPU the per-step ``phi(s')`` and the candidates' ``psi`` come
from :class:`~bfm_gym.models.fb.fast_policy.FBFeatures` (B's MLP in numpy with
``Cov^{-1}`` solved once, F and the actor as a few batched numpy ops) instead of the
model handle, which validates and converts every call and re-solves ``Cov`` for every
phi; ``FBFeatures`` checks itself against the handle at construction (phi to 1e-5 of its
scale, psi to 1e-4) and the handle is used for anything it does not cover (other
families, an auto-regressive B, GPU). The estimator stays in float64.

Labels are applied when the estimate is next read, not when they arrive: ``observe``
checks the transitions and queues them; the next selection, ``eval_z``, ``state_dict``
or any access to ``bandit`` first computes phi of every queued next state in one
batched pass and applies the updates in arrival order. No choice sees a stale estimate
(each selection reads every label that came before it); between selections a step
costs a queue append instead of a phi and an O(d^2) update. phi of a batch equals the
per-state phi up to float32 rounding (tests/adapters/test_adapters.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from bfm_gym.adapters.bandit import Geometry, LinearBandit, ucb_scores
from bfm_gym.adapters.base import Adapter, AdapterConfig, AdapterNeeds


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptiConfig(AdapterConfig):
    mode: Literal["ucb", "ts"] = "ucb"
    """``ucb``: optimistic candidate search (OpTI-BFM); ``ts``: Thompson sampling (OpTI-BFM-TS)."""
    beta: float = 1.0
    """Exploration weight of the UCB bonus (opti-bfm config default 1; its README run: 0.1)."""
    candidates: int = 128
    """Candidates per UCB selection, uniform in the ellipsoid of radius 2 beta."""
    reselect_every: int = 10
    """Env steps between selections (1 = per step, the paper's main runs; 1000 = per episode)."""
    lam: float = 1.0
    """Prior precision of the least-squares estimate."""
    decay: float = 1.0
    """Forgetting factor (< 1 tracks non-stationary rewards)."""
    kappa: float = 0.0
    """Information-gain gate on updates (0 = update on every transition)."""
    ts_noise_std: float = 0.01
    """Observation noise of the TS posterior."""
    warm_start: int = 0
    """Dataset labels that batch-update the estimate before the first step (0: none;
    a goal task uses the single pair (phi(g), 1))."""
    explore_steps: int = 0
    """Env steps at the start that play random latents instead of selecting (0: none; this
    project's option, not the paper's). Their rewards are regressed as any other label, and
    selection (UCB or TS) takes over afterwards. On the shipped walker model the states of
    10 episodes of random latents identify three of the four tasks far better than the states
    a greedy or mildly optimistic learner visits (``benchmarks/opti_identifiability.py``).
    Measured (walker, no dataset labels, 3 seeds, chosen on two selection seeds): 5000 brings
    the estimate to 1.02 / 0.99 / 1.04 / 0.86 of the oracle on stand / walk / run / flip at 10
    episodes, against 0.94 / 0.65 / 0.95 / 0.64 without; no help on the maze's sparse rewards.
    Off by default: it plays 5 episodes of undirected behaviour (docs/adapters.md, "OpTI-BFM
    with a random-latent start")."""
    explore_hold: int = 100
    """Env steps each random latent of ``explore_steps`` is held."""
    geometry: Geometry = "exact"
    """How candidates and TS draws spread around the estimate: ``exact`` fills the
    confidence ellipsoid ``||w - w_hat||_V <= 2 beta`` (TS: ``N(w_hat, V^-1)``);
    ``official`` maps the unit draws u to ``L^{-1} u`` with ``V = L L^T``, as opti-bfm
    does: the same axis lengths in another orientation (docs/adapters.md)."""

    def __post_init__(self) -> None:
        if self.mode not in ("ucb", "ts"):
            raise ValueError(f"OptiConfig.mode must be 'ucb' or 'ts'; got {self.mode!r}.")
        if self.beta < 0 or self.candidates < 1 or self.reselect_every < 1:
            raise ValueError("OptiConfig: beta >= 0, candidates >= 1 and reselect_every >= 1 required.")
        if self.geometry not in ("exact", "official"):
            raise ValueError(f"OptiConfig.geometry must be 'exact' or 'official'; got {self.geometry!r}.")
        if self.warm_start < 0:
            raise ValueError(f"OptiConfig.warm_start must be >= 0 dataset labels; got {self.warm_start}.")
        if self.explore_steps < 0 or self.explore_hold < 1:
            raise ValueError(f"OptiConfig: explore_steps >= 0 and explore_hold >= 1 required; got "
                             f"explore_steps={self.explore_steps}, explore_hold={self.explore_hold}.")


class OptiAdapter(Adapter):
    """OpTI-BFM (UCB) and OpTI-BFM-TS."""

    name = "opti"
    config_class = OptiConfig
    needs = AdapterNeeds(labels="online", z_hold=1)

    @classmethod
    def needs_for(cls, config: OptiConfig) -> AdapterNeeds:  # type: ignore[override]
        if config.warm_start > 0:
            return dataclasses.replace(cls.needs, labels="dataset+online")
        return cls.needs

    def __init__(self, bfm: Any, task: dict[str, Any], config: Any = None, seed: int = 0,
                 samples: Any = None) -> None:
        super().__init__(bfm, task, config, seed)
        c = self.config
        noise = c.ts_noise_std if c.mode == "ts" else 1.0
        self._bandit = LinearBandit(bfm.z_dim, lam=c.lam, decay=c.decay, kappa=c.kappa,
                                    noise_std=noise)
        self._queued_obs: list[np.ndarray] = []  # labels not yet in the estimate
        self._queued_rewards: list[np.ndarray] = []
        self.steps = 0
        fast = getattr(bfm, "fast_features", None)  # optional family capability
        self._fast = fast() if callable(fast) else None
        if c.warm_start > 0:
            self._warm_start(samples)

    def _warm_start(self, samples: Any) -> None:
        goal = self.task.get("goal")
        if goal is not None and samples is None:
            # point_mass_maze observes (x, y, vx, vy): the goal at rest
            g = np.zeros((1, self.bfm.obs_dim), dtype=np.float32)
            g[0, : len(goal)] = goal
            phi = np.asarray(self.bfm.phi(g))
            self.bandit.update(phi, np.ones(1), noise_std=1.0)
            return
        if samples is None:
            raise ValueError("OptiConfig.warm_start > 0 needs dataset samples (samples=...); "
                             "run through `adapt` with a model folder that ships inference samples.")
        n = min(self.config.warm_start, len(samples.next_obs))
        idx = self.rng.choice(len(samples.next_obs), size=n, replace=False)
        rewards = samples.rewards(self.task.get("task"), goal=goal)[idx]
        phi = np.asarray(self.bfm.phi(np.asarray(samples.next_obs[idx], dtype=np.float32)))
        # unit noise even in TS mode (sigma 0.01), as opti-bfm's warm start: dataset labels
        # weigh like a prior of the online ones, not 1/sigma^2 = 10^4 times more
        self.bandit.update(phi, rewards.astype(np.float64), noise_std=1.0)

    @property
    def bandit(self) -> LinearBandit:
        """The least-squares estimator, with every label observed so far applied."""
        if self._queued_obs:
            rows = np.concatenate(self._queued_obs)
            rewards = np.concatenate(self._queued_rewards)
            self._queued_obs, self._queued_rewards = [], []
            self._bandit.update(self._phi(rows), rewards)
        return self._bandit

    def _project(self, w: np.ndarray) -> np.ndarray:
        return np.asarray(self.bfm.project(np.asarray(w, dtype=np.float32)), dtype=np.float32)

    def select(self, obs: np.ndarray) -> np.ndarray:
        """Chooses a latent for ``obs`` (UCB over candidates, or a posterior draw)."""
        c = self.config
        if c.mode == "ts":
            return self._project(self.bandit.sample_posterior(self.rng, c.geometry))
        cand = self.bandit.sample_ellipsoid(c.candidates, 2 * c.beta, self.rng,
                                           c.geometry).astype(np.float32)
        norms = np.linalg.norm(cand, axis=1)
        cand[norms < 1e-8] = 1.0  # no direction: any fixed latent
        if self._fast is not None:  # one sphere (FBFeatures covers no auto-regressive B)
            norms = np.linalg.norm(cand, axis=1, keepdims=True)
            z = cand * (np.float32(np.sqrt(cand.shape[1])) / np.maximum(norms, np.float32(1e-12)))
        else:
            z = np.asarray(self.bfm.project(cand), dtype=np.float32)
        if self._fast is not None:
            psi = self._fast.psi(self._obs_row(obs), z)  # (E, n, d), policy-mean action
        else:
            obs_rows = np.repeat(np.asarray(obs, dtype=np.float32)[None], c.candidates, axis=0)
            psi = np.asarray(self.bfm.psi(obs_rows, z))
        scores = ucb_scores(psi, self.bandit, c.beta) + 1e-8 * self.rng.uniform(size=c.candidates)
        return z[int(np.argmax(scores))]

    def act(self, obs: np.ndarray) -> np.ndarray:
        c = self.config
        if self.steps < c.explore_steps:
            if self.steps % c.explore_hold == 0:  # a random latent, uniform on the sphere
                self.z = self._project(self.rng.standard_normal(self.bfm.z_dim))
        elif (self.steps - c.explore_steps) % c.reselect_every == 0:
            self.z = self.select(obs)
        self.steps += 1
        return self.z

    def eval_z(self) -> np.ndarray:
        """The least-squares estimate ``proj(w_hat)``: what OpTI has learned of the task,
        not its optimistic (UCB) or sampled (TS) exploration choice. Before any label,
        ``w_hat`` is zero and has no direction, so the current latent stands in."""
        w = self.bandit.w_hat()
        if not np.linalg.norm(w) > 1e-8:
            return self.z.copy()
        return self._project(w)

    def _obs_row(self, obs: Any) -> np.ndarray:
        """One finite observation ``(obs_dim,)`` for the fast path (errors as the handle's)."""
        o = np.asarray(obs, dtype=np.float32)
        if o.shape != (self.bfm.obs_dim,) or not np.isfinite(o).all():
            self.bfm.phi(o)  # raises the handle's error naming the problem
            raise ValueError(f"opti: expected a finite observation of shape ({self.bfm.obs_dim},); "
                             f"got shape {o.shape}.")
        return o

    def _phi(self, rows: np.ndarray) -> np.ndarray:
        """``(n, d)`` features of checked next states ``(n, obs_dim)``."""
        if self._fast is None:
            return np.asarray(self.bfm.phi(rows))
        if len(rows) == 1:
            return self._fast.phi(rows[0])[None]
        return self._fast.phi_many(rows)

    def observe(self, transitions: Any) -> dict[str, float]:
        rows = np.asarray(transitions.next_obs, dtype=np.float32)
        rewards = np.asarray(transitions.reward, dtype=np.float64).reshape(-1)
        if rows.ndim != 2 or rows.shape[1] != self.bfm.obs_dim or not np.isfinite(rows).all():
            self.bfm.phi(rows)  # raises the handle's error naming the problem
            raise ValueError(f"opti: expected finite next observations of shape (n, "
                             f"{self.bfm.obs_dim}); got shape {rows.shape}.")
        if len(rewards) != len(rows) or not np.isfinite(rewards).all():
            raise ValueError(f"opti: expected {len(rows)} finite rewards for {len(rows)} next "
                             f"observations; got {rewards.shape[0]} ({rewards[:4]}...).")
        self._queued_obs.append(rows.copy())
        self._queued_rewards.append(rewards)
        self.labels_used += len(transitions)
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        state = super().state_dict()
        state.update({f"bandit/{k}": v for k, v in self.bandit.state_dict().items()})
        state["steps"] = np.array(self.steps, dtype=np.int64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        self._queued_obs, self._queued_rewards = [], []  # the loaded state replaces them
        self._bandit.load_state_dict({k.split("/", 1)[1]: v for k, v in state.items()
                                     if k.startswith("bandit/")})
        self.steps = int(state["steps"])
