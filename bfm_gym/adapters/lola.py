"""``lola``: Lookahead Latent Adaptation (Sikchi et al., arXiv 2504.07896;
docs/algorithms.md#lola).

A Gaussian "policy over latents" ``z ~ N(mu, sigma^2 I)`` searches the frozen BFM's latent
space; ``mu`` starts at the zero-shot latent ``proj(z_r)`` and ``sigma`` is fixed. The real
episode is played with ``proj(mu)`` (the paper; see ``select`` below for this project's
default). Every ``update_every`` real steps, LoLA picks a start
state ``s_0`` uniformly among the simulator states visited in the current and previous real
episodes, restores it in a second simulator (a *privileged reset*), draws k latents
``z_i = proj(mu + sigma eps_i)`` and rolls each out for ``n`` steps with the frozen actor's
mean action::

    R_i = sum_{t<n} gamma^t r_t + gamma^n agg_k psi_k(s_n, pi(s_n, z_i), z_i)^T z_r

(``z_r``: the fixed zero-shot reward weights, docs/algorithms.md#pitfall-fixed-zr; ``agg_k``: min over two F
heads). A rollout that truncates early bootstraps where it stopped; one that terminates
bootstraps nothing. The leave-one-out REINFORCE estimate::

    grad_mu J ~= 1/k sum_i (R_i - 1/(k-1) sum_{j != i} R_j) (z~_i - mu) / sigma^2

(``z~_i = mu + sigma eps_i`` before projection; ``(z~_i - mu)/sigma^2`` is the score of
``N(mu, sigma^2 I)``) drives an Adam *ascent* step on ``mu``, then ``mu <- proj(mu)``.

Every lookahead step is an env step taken outside the recorded episodes: it is added to
:attr:`~bfm_gym.adapters.base.Adapter.sim_steps` (the adaptation runner adds those to the
budget) and its reward to ``labels_used``. LoLA learns from lookahead rewards only, so the
real episode's rewards are not counted as labels. It needs a simulator whose state can be
restored (``reset(options={"state": s})``); without one it cannot run.

**Departure from the paper:** by default (``select="race"``) the real episodes alternate between
the zero-shot latent and ``proj(mu)``, and evaluation holds ``proj(mu)`` only while its real
returns beat the zero-shot latent's; ``select="mu"`` is the paper's rule (see
:class:`LoLAConfig`). ``guard`` (off
by default) adds a paired check of ``proj(mu)`` against the zero-shot latent
after each update; docs/adapters.md ("LoLA's losses on cheetah: two changes tried") has why it stays off.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from bfm_gym.adapters._common import (EpisodeSelection, SelectsFromEpisodes, aggregate_heads, check_select,
                                      reward_weights)
from bfm_gym.adapters.base import Adapter, AdapterConfig, AdapterNeeds

__all__ = ["LoLAAdapter", "LoLAConfig", "antithetic_gradient", "loo_gradient"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoLAConfig(AdapterConfig):
    sigma: float = 0.2
    """Fixed std of the latent Gaussian, per coordinate of z on the sqrt(d) sphere (so a draw
    moves z by about ``sigma`` times its norm). UNVERIFIED in the paper; this project's choice
    (a third-party re-implementation uses 0.1; opti-bfm's baseline 0.2 on the unit sphere)."""
    k: int = 8
    """Latent samples per update, all rolled out from the same start state (this project's
    choice, as opti-bfm's baseline: 8)."""
    horizon: int = 50
    """Lookahead steps n before bootstrapping with the BFM's value (this project's choice:
    gamma^50 ~ 0.36 at gamma 0.98, so both parts count). Measured over the 16 tasks of the four
    shipped models: 100 cuts the cheetah walk/run losses from -39/-59 % to -9/-22 % but, at
    twice the lookahead cost, lowers the median gain from +4.2 to +3.0 % (docs/adapters.md)."""
    starts: int = 1
    """Updates per round, each from its own uniformly drawn start state."""
    update_every: int = 250
    """Real env steps between rounds (this project's choice, as opti-bfm's z-hold of 250: four
    rounds per 1000-step DMC episode; with the defaults the lookahead costs
    ``starts * k * horizon / update_every = 1.6`` sim steps per real step)."""
    lr: float = 0.01
    """Adam learning rate of mu; Adam betas (0.9, 0.999), eps 1e-8. The paper's 0.1 [seed] is
    for its own scale of z; here z lives on the sqrt(d) sphere, where 0.1 moves every
    coordinate of mu by about 10 % of its size per update, a random walk under the noisy
    8-sample gradient: on the shipped walker it lost 12 % (median over tasks) in 50
    episodes, 0.01 gained 19 % with the mean curve at most 2 % below zero-shot (maze: +26 %,
    never below); docs/adapters.md has the runs."""
    pessimism: float = 0.5
    """Penalty on the F heads' disagreement in the bootstrap (0.5 = min over two heads)."""
    keep_episodes: int = 2
    """Real episodes whose visited states are start-state candidates (2: current and previous)."""
    guard: int = 0
    """Paired guard against drifting below zero-shot (this project's addition, not the paper's;
    0 = off). After each update, the new ``proj(mu)`` and the zero-shot latent are both rolled
    out from the round's start state (two more lookaheads, counted as sim steps); the real
    episode plays ``proj(mu)`` only while the mean paired difference
    ``R(proj(mu)) - R(z_0)`` over the last ``guard`` rounds is above 0, else the zero-shot
    latent. mu keeps learning either way. Measured off: with ``guard=8`` cheetah walk and run
    fell further (-69 %, -65 % against -39 %, -59 %) and walker's gains shrank, because the
    lookahead misjudges the same latents it guards against (docs/adapters.md)."""

    select: str = "race"
    """Which latent the real episodes play and evaluation holds
    (:class:`~bfm_gym.adapters._common.EpisodeSelection`). ``"mu"`` (the paper): the current
    ``proj(mu)``, replaced after every round. ``"best_episode"``: each real episode holds
    ``proj(mu)`` from its start and evaluation holds the played latent with the highest return.
    ``"race"`` (the default, this project's departure from the paper): real episodes alternate
    between the zero-shot latent and ``proj(mu)``, and evaluation holds ``proj(mu)`` while its
    last ``select_window`` episodes have a higher median and mean return than the zero-shot ones. mu
    learns from the lookaheads in every mode, and the real episodes' returns cost no extra env
    step. Measured over the 16 tasks of the four shipped models (5 seeds, 20 episodes): ``mu``
    median gain +6.2 %, mean +3.5 %, worst task -57 % (cheetah run); ``race`` +2.1 %, +9.5 %,
    worst -1.0 % (walker flip; +2.4 %, +7.1 %, -2.0 % on five other seeds), with evaluation
    curves dipping far less below zero-shot on every model (docs/adapters.md, "Choosing from
    the real episodes' returns")."""
    select_window: int = 3
    """Episodes of ``proj(mu)`` whose median and mean ``select="race"`` compares."""
    select_base: int = 0
    """``select="race"`` only: zero-shot episodes after which the zero-shot latent stops
    playing, so that every later real episode plays ``proj(mu)`` (0: it plays every other episode
    throughout). Evaluation still compares the last ``select_window`` episodes with all
    zero-shot ones."""
    antithetic: bool = False
    """Draw the k latents as k/2 mirrored pairs ``mu +- sigma eps`` and estimate the gradient
    from each pair's difference (:func:`antithetic_gradient`) instead of the leave-one-out
    baseline (this project's option, not the paper's; k must be even). Both members of a pair
    start from the same simulator state and the rollouts are deterministic, so the difference
    cancels the part of the return that is even in ``eps``: a standard variance reduction of
    evolution strategies. Measured off: on walker's two selection seeds at 50 episodes (lr 0.03) the
    median gain was +9 % against +23 % for leave-one-out (docs/adapters.md, "LoLA's
    gradient, screened again")."""

    def __post_init__(self) -> None:
        check_select("LoLAConfig", self.select, self.select_window, self.select_base)
        for name in ("sigma", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LoLAConfig.{name} must be > 0; got {getattr(self, name)!r}.")
        if self.k < 2:
            raise ValueError(f"LoLAConfig.k must be >= 2 (the leave-one-out baseline needs two "
                             f"latents); got {self.k}.")
        if self.guard < 0:
            raise ValueError(f"LoLAConfig.guard must be >= 0 (0 = off); got {self.guard}.")
        if self.select != "mu" and self.guard:
            raise ValueError(f"LoLAConfig.guard works with select='mu' only (got select="
                             f"{self.select!r}, which decides what plays itself): add "
                             "select='mu' (`--set lola.select=mu`) or drop the guard.")
        for name in ("horizon", "starts", "update_every", "keep_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"LoLAConfig.{name} must be >= 1; got {getattr(self, name)!r}.")
        if self.pessimism < 0:
            raise ValueError(f"LoLAConfig.pessimism must be >= 0; got {self.pessimism}.")
        if self.antithetic and self.k % 2:
            raise ValueError(f"LoLAConfig.antithetic draws k/2 mirrored pairs, so k must be even; "
                             f"got k={self.k} (e.g. `--set lola.k={self.k + 1}`).")


def loo_gradient(returns: np.ndarray, z: np.ndarray, mu: np.ndarray, sigma: float) -> np.ndarray:
    """Leave-one-out REINFORCE estimate of ``grad_mu E_{z ~ N(mu, sigma^2 I)}[R(z)]``.

    ``A_i = R_i - mean_{j != i} R_j`` and ``g = mean_i A_i (z_i - mu) / sigma^2``.

    Args:
        returns: ``(k,)`` returns R_i, k >= 2.
        z: ``(k, d)`` the drawn latents *before* projection.
        mu: ``(d,)`` the Gaussian's mean.
        sigma: Its std.

    Returns:
        ``(d,)`` float64.
    """
    r = np.asarray(returns, dtype=np.float64)
    k = r.shape[0]
    advantage = r - (r.sum() - r) / (k - 1)
    score = (np.asarray(z, dtype=np.float64) - np.asarray(mu, dtype=np.float64)) / sigma**2
    return advantage @ score / k


def antithetic_gradient(returns: np.ndarray, eps: np.ndarray, sigma: float) -> np.ndarray:
    """Mirrored-sampling estimate of ``grad_mu E_{z ~ N(mu, sigma^2 I)}[R(z)]``.

    The latents are ``mu + sigma eps_j`` (rows ``0..m-1`` of ``returns``) and ``mu - sigma eps_j``
    (rows ``m..2m-1``); ``g = mean_j (R_j^+ - R_j^-) eps_j / (2 sigma)``. Like the leave-one-out
    estimate it is unbiased and ignores a constant added to every return.

    Args:
        returns: ``(2m,)`` returns, the m ``+`` latents first, then their mirror images.
        eps: ``(m, d)`` the standard-normal directions.
        sigma: The Gaussian's std.

    Returns:
        ``(d,)`` float64.
    """
    r = np.asarray(returns, dtype=np.float64)
    e = np.asarray(eps, dtype=np.float64)
    m = e.shape[0]
    if r.shape != (2 * m,):
        raise ValueError(f"antithetic_gradient: expected {2 * m} returns for {m} pairs; got shape {r.shape}.")
    return (r[:m] - r[m:]) @ e / (2 * sigma * m)


class LoLAAdapter(SelectsFromEpisodes, Adapter):
    """LoLA: leave-one-out policy gradient on a Gaussian over latents, from privileged resets.

    Args:
        bfm: The frozen model.
        task: ``{"domain", "task", "goal"}`` (the zero-shot inference relabels ``samples``).
        config: :class:`LoLAConfig` or a dict of its fields.
        seed: Seeds the start-state and latent draws.
        samples: The model's inference samples (reward labels of dataset states).
        sim: A second env of the same task whose ``reset(options={"state": s})`` restores a
            simulator state ``s`` (a bfm_gym ``DMCEnv``, optionally ``TimeLimit``-wrapped).

    Raises:
        ValueError: No ``sim`` (or one without state resets), no samples, or no sample with a
            nonzero task reward.
    """

    name = "lola"
    config_class = LoLAConfig
    needs = AdapterNeeds(labels="dataset+online", state_resets=True, z_hold=1)

    def __init__(self, bfm: Any, task: dict[str, Any], config: Any = None, seed: int = 0,
                 samples: Any = None, sim: Any = None) -> None:
        super().__init__(bfm, task, config, seed)
        if sim is None or not callable(getattr(getattr(sim, "unwrapped", None), "set_state", None)):
            found = "none" if sim is None else type(getattr(sim, "unwrapped", sim)).__name__
            raise ValueError(
                "LoLA needs resets to simulator states (privileged resets): pass sim=, a second "
                "env of the same task whose reset(options={'state': s}) restores s, such as a "
                f"bfm_gym DMCEnv (found: {found}). `bfm_gym.experiments.adapt` passes one."
            )
        from bfm_gym.wrappers.latent import InnerEnvSpec

        self.sim = sim
        self._sim_spec = InnerEnvSpec.check(sim, bfm, owner="LoLAAdapter")
        self.z_r = reward_weights(bfm, samples, self.task, "LoLA")
        """Fixed reward weights ``(z_dim,)`` (unprojected least squares, as ReLA's)."""
        self.mu = self._project(self.z_r)
        self.z0 = self.mu.copy()
        """The zero-shot latent ``proj(z_r)``, the guard's reference."""
        self.z = self.mu.copy()
        self.selection = EpisodeSelection(
            self.config.select, self.z0, self.config.select_window, self.config.select_base
        )
        """Played latents and their real returns (``select`` other than ``"mu"``)."""
        self.guard_diffs: list[float] = []
        """Paired lookahead differences ``R(proj(mu)) - R(z_0)``, one per round (guard on)."""
        self.adam_m = np.zeros(bfm.z_dim)
        self.adam_v = np.zeros(bfm.z_dim)
        self.adam_t = 0
        self.steps = 0
        """Real env steps observed."""
        self.updates = 0
        """Adam steps taken on mu."""
        self._episodes: list[list[np.ndarray]] = []  # per kept episode: chunks of states

    def _project(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.bfm.project(np.asarray(z, dtype=np.float32)), dtype=np.float32)

    # -- acting ---------------------------------------------------------------------------

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.z

    def learned_latent(self) -> np.ndarray:
        return self.mu

    def on_episode_start(self, obs: np.ndarray) -> None:
        self._episodes.append([])
        del self._episodes[: -self.config.keep_episodes]
        super().on_episode_start(obs)  # select: what this episode holds

    def observe(self, transitions: Any) -> dict[str, float]:
        """Records the visited states; every ``update_every`` real steps runs a round."""
        if transitions.next_state is None:
            raise ValueError("LoLA needs simulator states in the transitions: build the latent "
                             "wrapper with record_state=True (`adapt` does).")
        if not self._episodes:
            self._episodes.append([])
        # an episode's last state cannot start a rollout (the sim would need a reset)
        keep = ~(np.asarray(transitions.terminated) | np.asarray(transitions.truncated))
        if keep.any():
            self._episodes[-1].append(np.array(transitions.next_state[keep], dtype=np.float64))
        n = len(transitions)
        every = self.config.update_every
        rounds = (self.steps + n) // every - self.steps // every
        self.steps += n
        for _ in range(rounds * self.config.starts):
            self.update()
        return {}

    # -- learning -------------------------------------------------------------------------

    def update(self) -> None:
        """One LoLA step: a start state, k lookahead rollouts, an Adam ascent step on mu."""
        chunks = [c for episode in self._episodes for c in episode]
        if not chunks:
            return
        c = self.config
        states = np.concatenate(chunks)
        s0 = states[self.rng.integers(len(states))]
        if c.antithetic:
            eps = self.rng.standard_normal((c.k // 2, self.bfm.z_dim))
            noise = np.concatenate([eps, -eps])
        else:
            noise = self.rng.standard_normal((c.k, self.bfm.z_dim))
        z_raw = self.mu.astype(np.float64) + c.sigma * noise
        returns = self.lookahead(s0, self._project(z_raw))
        grad = (antithetic_gradient(returns, eps, c.sigma) if c.antithetic
                else loo_gradient(returns, z_raw, self.mu, c.sigma))
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        self.adam_t += 1
        self.adam_m = beta1 * self.adam_m + (1 - beta1) * grad
        self.adam_v = beta2 * self.adam_v + (1 - beta2) * grad**2
        m_hat = self.adam_m / (1 - beta1**self.adam_t)
        v_hat = self.adam_v / (1 - beta2**self.adam_t)
        self.mu = self._project(self.mu + c.lr * m_hat / (np.sqrt(v_hat) + eps))  # ascent
        self.updates += 1
        if c.select == "mu":
            self.z = self.mu.copy() if not c.guard else self._guarded(s0)

    def _guarded(self, s0: np.ndarray) -> np.ndarray:
        """The latent to play after a paired check of ``proj(mu)`` against the zero-shot z."""
        pair = self.lookahead(s0, np.stack([self.mu, self.z0]))
        self.guard_diffs.append(float(pair[0] - pair[1]))
        recent = self.guard_diffs[-self.config.guard:]
        return self.mu.copy() if float(np.mean(recent)) > 0 else self.z0.copy()

    def lookahead(self, s0: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``R_i`` of each latent from simulator state ``s0`` (n steps, then the BFM's value).

        Args:
            s0: A simulator state.
            z: ``(k, z_dim)`` projected latents.

        Returns:
            ``(k,)`` float64 returns; every step taken is counted in ``sim_steps``.
        """
        gamma, k = self.bfm.gamma, z.shape[0]
        returns = np.zeros(k)
        discount = np.zeros(k)
        last_obs = np.zeros((k, self.bfm.obs_dim), dtype=np.float32)
        for i in range(k):
            obs, _ = self.sim.reset(options={"state": s0})
            total, disc, bootstrap = 0.0, 1.0, True
            for _ in range(self.config.horizon):
                action = self._sim_spec.to_env_action(self.bfm.act(obs, z[i]))
                obs, r, terminated, truncated, _ = self.sim.step(action)
                self.sim_steps += 1
                self.labels_used += 1
                total += disc * float(r)
                disc *= gamma
                if terminated:
                    bootstrap = False
                if terminated or truncated:
                    break
            returns[i], last_obs[i] = total, obs
            discount[i] = disc if bootstrap else 0.0
        psi = self.bfm.psi(torch.as_tensor(last_obs), torch.as_tensor(z, dtype=torch.float32))
        z_r = torch.as_tensor(self.z_r, device=psi.device)
        value = aggregate_heads((psi * z_r).sum(-1), self.config.pessimism).cpu().numpy()
        return returns + discount * value.astype(np.float64)

    # -- persistence ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        state = super().state_dict()
        state.update({"mu": self.mu.copy(), "adam_m": self.adam_m.copy(), "adam_v": self.adam_v.copy(),
                      "adam_t": np.array(self.adam_t, dtype=np.int64),
                      "steps": np.array(self.steps, dtype=np.int64),
                      "updates": np.array(self.updates, dtype=np.int64),
                      "guard_diffs": np.array(self.guard_diffs, dtype=np.float64),
                      **self.selection.state_dict(),
                      "episodes": np.array(len(self._episodes), dtype=np.int64)})
        for i, episode in enumerate(self._episodes):
            state[f"episode_states/{i}"] = np.concatenate(episode) if episode else np.zeros((0, 0))
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        self.mu = np.array(state["mu"], dtype=np.float32)
        self.adam_m = np.array(state["adam_m"], dtype=np.float64)
        self.adam_v = np.array(state["adam_v"], dtype=np.float64)
        self.adam_t = int(state["adam_t"])
        self.steps = int(state["steps"])
        self.updates = int(state["updates"])
        self.guard_diffs = [float(x) for x in state.get("guard_diffs", np.zeros(0))]
        self.selection.load_state_dict(state)
        self._episodes = []
        for i in range(int(state["episodes"])):
            arr = np.array(state[f"episode_states/{i}"], dtype=np.float64)
            self._episodes.append([arr] if arr.size else [])
