"""Does F's value point uphill? A check of a model's latent gradient against real episodes.

For a task with reward weights ``z_r`` (``phi(s)^T z_r ~ r(s)``), F values every policy
``pi_z`` of the model for that reward:

    V_F(z) = E_s[ agg_k psi_k(s, pi(s, z), z)^T z_r ]

(``psi_k`` the k-th F head, ``agg`` the heads' pessimistic mean). For a perfect model,
``pi_{z_r}`` is optimal for the reward F values, so ``V_F`` is at its maximum at
``proj(z_r)`` and its gradient there is zero. A gradient adapter (ReLA) climbs this
gradient, so when it is not zero, the question that decides whether such an adapter can work
is: does the direction F calls uphill raise the *real* return?

:func:`gradient_check` answers it without any adapter: it plays ``pi_{z_r}`` to collect the
states a gradient adapter's buffer first holds, takes the tangent gradient of ``V_F`` at
``proj(z_r)`` on them, turns the latent by a few degrees along it, and plays each turned
latent and ``proj(z_r)`` from the same start states. It reports what F predicts for each
turn (``V_F`` evaluated there, not a linearisation) and what the episodes measured, as
paired gains over the zero-shot latent with 95 % bootstrap intervals. The verdict per task:

* ``"uphill"``: the smallest turn's real gain has its interval above 0: F's gradient leads
  to better policies, and a gradient adapter has something to climb;
* ``"downhill"``: the interval is below 0: F's gradient leads to worse policies, so an
  adapter following it (ReLA's F term) loses; latent *search* on real returns (LoLA, CEM)
  does not rely on it;
* ``"unclear"``: the interval holds 0.

A control separates F's error from the shape of the real return: the zero-shot latent may sit
on a peak that every turn descends, and F's gradient may point where the policy is most
sensitive, so that an equal angle changes behaviour more along it. So ``random_directions``
random tangent directions are each turned as far as changes the policy's actions (root mean
square over the check's states) as much as F's smallest turn does, and played from the same
start states; ``versus_random`` says whether F's direction did better than them (``"better"`` / ``"worse"``: the paired interval of the
difference excludes 0; ``"unclear"``). For an informative gradient it is ``"better"`` even
where the verdict is ``"downhill"``.

Cost: ``state_episodes`` episodes to collect states, then ``(1 + len(degrees) +
random_directions) x len(seeds)`` episodes in lockstep with one batched policy call per step.
``benchmarks/gradient_check.py`` runs it on every task of the shipped models;
``bfm-gym card --gradient-check`` adds its table to a model card.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

from bfm_gym.evaluation.headroom import latent_returns
from bfm_gym.evaluation.rollout import rollout_returns

__all__ = ["GradientCheck", "f_value", "gradient_check", "rotate", "toward"]

Verdict = Literal["uphill", "downhill", "unclear"]
GradPath = Literal["full", "action"]
Versus = Literal["better", "worse", "unclear"]


@dataclass
class GradientCheck:
    """What :func:`gradient_check` measured on one task.

    Attributes:
        task: Task label.
        degrees: The turns played, in degrees along F's gradient.
        states: Number of states ``V_F`` and its gradient were averaged over.
        f_value: ``V_F`` at the zero-shot latent.
        f_slope_per_degree: F's predicted relative gain per degree of turn at the zero-shot
            latent (the tangent gradient's norm times the sphere's radius in radians per
            degree, over ``|V_F|``); 0 for a perfect model.
        f_predicted_gain: Per turn, ``(V_F(turned) - V_F(zero-shot)) / |V_F(zero-shot)|``.
        zero_shot_return: Mean return of the zero-shot latent over the start states.
        returns: Per turn, mean return over the same start states.
        gain: Per turn, the mean paired difference over ``|zero_shot_return|``.
        gain_ci95: Per turn, a 95 % bootstrap interval of ``gain``.
        verdict: ``"uphill"``, ``"downhill"`` or ``"unclear"`` (module docstring), read on the
            smallest turn.
        seeds: Reset seeds of the paired episodes.
        action_change: How much the smallest turn along F's gradient changes the policy's
            actions on the check's states (root mean square of the action difference's norm).
        random_degrees: Per random tangent direction, the turn that changes the actions as
            much (the control is matched on behaviour, not on angle: F's gradient may point
            where the policy is most sensitive).
        random_gain: Per random direction, the measured gain of that turn.
        random_f_predicted_gain: Per random direction, F's predicted gain of that turn.
        gain_over_random: The smallest turn's gain along F's direction minus the mean gain of
            the random directions' turns (paired per start state; None without them).
        gain_over_random_ci95: Its 95 % bootstrap interval (None without random directions).
        versus_random: ``"better"``, ``"worse"`` or ``"unclear"`` (module docstring; None
            without random directions).
        path: How z entered F's value (``"full"`` or ``"action"``; see :func:`gradient_check`).
        direction: The unit tangent direction at the zero-shot latent the turns followed
            (F's value gradient, normalised).
    """

    task: str
    degrees: list[float]
    states: int
    f_value: float
    f_slope_per_degree: float
    f_predicted_gain: list[float]
    zero_shot_return: float
    returns: list[float]
    gain: list[float]
    gain_ci95: list[tuple[float, float]]
    verdict: Verdict
    seeds: list[int]
    action_change: float
    random_degrees: list[float]
    random_gain: list[float]
    random_f_predicted_gain: list[float]
    gain_over_random: float | None
    gain_over_random_ci95: tuple[float, float] | None
    versus_random: Versus | None
    path: GradPath
    direction: list[float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rotate(z: np.ndarray, direction: np.ndarray, degrees: float) -> np.ndarray:
    """``z`` turned by ``degrees`` along the unit tangent ``direction``, on z's sphere."""
    z = np.asarray(z, dtype=np.float64)
    u = z / np.linalg.norm(z)
    t = math.radians(degrees)
    return (np.linalg.norm(z) * (math.cos(t) * u + math.sin(t) * np.asarray(direction))).astype(np.float32)


def toward(z: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """The unit tangent direction at ``z`` of the great circle to ``target`` (what
    :func:`rotate` turns along); None when ``target`` lies on z's own line."""
    z, target = np.asarray(z, dtype=np.float64), np.asarray(target, dtype=np.float64)
    u = z / np.linalg.norm(z)
    v = target - (target @ u) * u
    norm = np.linalg.norm(v)
    return None if norm < 1e-6 * np.linalg.norm(target) else v / norm


def f_value(bfm: Any, obs: torch.Tensor, z: torch.Tensor, weights: torch.Tensor,
            pessimism: float = 0.5, critic_z: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """``V_F(z)`` per state of ``obs``: ``agg_k psi_k(s, pi(s, proj z), proj z)^T weights``,
    differentiable in ``z`` (the value ReLA's latent step climbs,
    :func:`~bfm_gym.adapters._common.weighted_value`).

    With ``critic_z``, F is conditioned on ``proj(critic_z)`` instead of ``proj(z)``, so ``z``
    enters through the action alone: ``agg_k psi_k(s, pi(s, proj z), proj critic_z)^T
    weights``, the deterministic policy gradient's path (``path="action"`` of
    :func:`gradient_check`)."""
    from bfm_gym.adapters._common import weighted_value

    zz = bfm.project(z).expand(len(obs), -1)
    action = bfm.act(obs, zz, grad=True)
    if critic_z is not None:
        zz = bfm.project(critic_z).expand(len(obs), -1)
    return weighted_value(bfm, obs, zz, action, weights, pessimism)


def _on_policy_states(bfm: Any, make_env: Callable[[], Any], z: np.ndarray, episodes: int,
                      seed: int) -> np.ndarray:  # fmt: skip
    """The observations ``pi(s, z)`` meets in ``episodes`` episodes (a finished episode's
    repeated last observation is not counted twice)."""
    seen: list[np.ndarray] = []
    last: list[np.ndarray | None] = [None]

    def policy(obs: np.ndarray) -> np.ndarray:
        prev = last[0]
        keep = np.ones(len(obs), bool) if prev is None else np.any(obs != prev, axis=1)
        seen.append(obs[keep].copy())
        last[0] = obs.copy()
        return np.asarray(bfm.act(obs, z))

    rollout_returns(make_env, policy, episodes, seed)
    return np.concatenate(seen).astype(np.float32)


def _actions(bfm: Any, obs: torch.Tensor, z: np.ndarray) -> np.ndarray:
    """``pi(s, z)`` on every state of ``obs``, float64."""
    with torch.no_grad():
        out = bfm.act(obs, torch.as_tensor(z, dtype=torch.float32, device=bfm.device))
    out = out.cpu().numpy() if isinstance(out, torch.Tensor) else out
    return np.array(out, dtype=np.float64)


def _action_change(bfm: Any, obs: torch.Tensor, base: np.ndarray, z: np.ndarray) -> float:
    """Root mean square over ``obs`` of ``||pi(s, z) - base||``, ``base`` the zero-shot
    latent's actions (:func:`_actions`): how much turning the latent to ``z`` changes what the
    policy does."""
    diff = _actions(bfm, obs, z) - base
    return float(np.sqrt((diff**2).sum(-1).mean()))


def _matching_angle(bfm: Any, obs: torch.Tensor, z0: np.ndarray, base: np.ndarray,
                    direction: np.ndarray, target: float, max_degrees: float = 60.0) -> float:  # fmt: skip
    """The turn of ``z0`` along ``direction`` (degrees, at most ``max_degrees``) whose action
    change (:func:`_action_change` against ``base``, ``z0``'s actions) equals ``target``, by
    bisection (the change grows with the angle near ``z0``; where it never reaches ``target``
    the largest turn is returned)."""
    lo, hi = 0.0, max_degrees
    if _action_change(bfm, obs, base, rotate(z0, direction, hi)) <= target:
        return hi
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        if _action_change(bfm, obs, base, rotate(z0, direction, mid)) < target:
            lo = mid
        else:
            hi = mid
    return round(0.5 * (lo + hi), 3)


def _random_tangent(u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A unit direction in the tangent plane at ``u`` (a unit vector), uniform over directions."""
    r = rng.standard_normal(len(u))
    r -= (r @ u) * u
    return r / np.linalg.norm(r)


def _paired_gain(diff: np.ndarray, scale: float, seed: int) -> tuple[float, tuple[float, float]]:
    """Mean paired difference over ``scale`` with its 95 % percentile-bootstrap interval."""
    from bfm_gym.evaluation.aggregate import bootstrap_replicates

    means = bootstrap_replicates({"diff": diff}, "mean", reps=10_000, seed=seed)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(diff.mean() / scale), (float(lo / scale), float(hi / scale))


def gradient_check(
    bfm: Any,
    make_env: Callable[[], Any],
    weights: np.ndarray,
    *,
    task: str = "",
    degrees: Sequence[float] = (5.0, 10.0),
    seeds: Sequence[int] = tuple(range(2000, 2010)),
    state_episodes: int = 2,
    max_states: int = 2048,
    pessimism: float = 0.5,
    random_directions: int = 4,
    path: GradPath = "full",
    seed: int = 0,
) -> GradientCheck:
    """Turns the zero-shot latent along F's value gradient and plays it (module docstring).

    Args:
        bfm: A loaded model whose family has F heads (``psi``) and a differentiable actor.
        make_env: Builds one env of the task (its reward is the one scored).
        weights: ``(z_dim,)`` reward weights ``z_r`` on the reward's own scale (e.g.
            :func:`bfm_gym.models.inference.reward_z` with ``project=False``); the zero-shot
            latent is ``proj(weights)``.
        task: Label stored in the result.
        degrees: Turns to play, each > 0; the smallest decides the verdict.
        seeds: Reset seeds of the paired episodes (at least 2).
        state_episodes: Episodes of the zero-shot policy whose states ``V_F`` is averaged over.
        max_states: At most this many of those states (a random subset) enter ``V_F``.
        pessimism: Head aggregation of ``V_F`` (0: mean; 0.5 with two heads: their min,
            ReLA's default).
        random_directions: Random tangent directions of the control, each turned as far as
            changes the policy's actions as much as the smallest turn along F's gradient
            (0: none).
        path: How z enters F's value. ``"full"`` (ReLA's objective): through the action and
            F's latent input, ``psi(s, pi(s, z), z)``. ``"action"``: through the action alone,
            F held at the zero-shot latent, ``psi(s, pi(s, z), z_0)`` (the deterministic policy
            gradient of F's critic for the task, the path an actor's training shapes); F's
            predictions are then this critic's values of the turned policy's actions.
        seed: Seed of the state subset, of the states' episodes, of the random directions and
            of the bootstrap.

    Raises:
        ValueError: Bad sizes or turns, weights of the wrong shape or all zero.
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.shape != (bfm.z_dim,) or not np.isfinite(w).all() or not np.any(w):
        raise ValueError(f"weights must be a finite nonzero ({bfm.z_dim},) vector; got shape "
                         f"{w.shape}. Pass reward_z(bfm, task=..., project=False).")  # fmt: skip
    degs = [float(d) for d in degrees]
    if not degs or min(degs) <= 0 or max(degs) >= 90:
        raise ValueError(f"degrees must be non-empty, each in (0, 90); got {list(degrees)}.")
    if len(seeds) < 2 or state_episodes < 1 or max_states < 1 or random_directions < 0:
        raise ValueError("Need at least 2 seeds, state_episodes >= 1, max_states >= 1 and "
                         f"random_directions >= 0; got {len(seeds)}, {state_episodes}, "
                         f"{max_states}, {random_directions}.")  # fmt: skip
    if path not in ("full", "action"):
        raise ValueError(f"path must be 'full' or 'action'; got {path!r}.")
    z0 = np.asarray(bfm.project(w), dtype=np.float32)
    states = _on_policy_states(bfm, make_env, z0, state_episodes, seed)
    if len(states) > max_states:
        idx = np.random.default_rng(seed).choice(len(states), size=max_states, replace=False)
        states = states[np.sort(idx)]
    obs = torch.as_tensor(states, device=bfm.device)
    w_t = torch.as_tensor(w, device=bfm.device)
    leaf = torch.as_tensor(z0, device=bfm.device).clone().requires_grad_(True)
    fixed = torch.as_tensor(z0, device=bfm.device) if path == "action" else None
    value = f_value(bfm, obs, leaf, w_t, pessimism, fixed).mean()
    (grad,) = torch.autograd.grad(value, leaf)
    g = grad.detach().cpu().numpy().astype(np.float64)
    u = z0 / np.linalg.norm(z0)
    tangent = g - (g @ u) * u
    v0 = float(value.detach())
    scale = max(abs(v0), 1e-9)
    norm = float(np.linalg.norm(tangent))
    rng = np.random.default_rng(seed)
    randoms = [_random_tangent(u, rng) for _ in range(random_directions)]
    norm_dir = tangent / norm if norm > 0 else _random_tangent(u, rng)  # exactly flat: F has no say
    radius = float(np.linalg.norm(z0))
    first = int(np.argmin(degs))
    # the control turns as far as changes the policy's actions as much as F's smallest turn
    z0_actions = _actions(bfm, obs, z0)
    target = _action_change(bfm, obs, z0_actions, rotate(z0, norm_dir, degs[first]))
    matched = [_matching_angle(bfm, obs, z0, z0_actions, r, target) for r in randoms]
    zs = np.stack([z0] + [rotate(z0, norm_dir, d) for d in degs]
                  + [rotate(z0, r, a) for r, a in zip(randoms, matched, strict=True)])  # fmt: skip
    with torch.no_grad():
        predicted = [(float(f_value(bfm, obs, torch.as_tensor(z, device=bfm.device), w_t,
                                    pessimism, fixed).mean()) - v0) / scale for z in zs[1:]]  # fmt: skip
    returns = latent_returns(bfm, make_env, zs, list(seeds))
    base = returns[0]
    zs_ret = float(base.mean())
    ret_scale = max(abs(zs_ret), 1e-9)
    gains, cis = [], []
    for k, r in enumerate(returns[1:]):
        gain, ci = _paired_gain(r - base, ret_scale, seed + k)
        gains.append(round(gain, 4))
        cis.append((round(ci[0], 4), round(ci[1], 4)))
    lo, hi = cis[first]
    verdict: Verdict = "uphill" if lo > 0 else "downhill" if hi < 0 else "unclear"
    over: float | None = None
    over_ci: tuple[float, float] | None = None
    versus: Versus | None = None
    if randoms:
        along = returns[1 + first]
        control = returns[1 + len(degs):].mean(axis=0)
        over, (o_lo, o_hi) = _paired_gain(along - control, ret_scale, seed + len(zs))
        over, over_ci = round(over, 4), (round(o_lo, 4), round(o_hi, 4))
        versus = "better" if o_lo > 0 else "worse" if o_hi < 0 else "unclear"
    return GradientCheck(
        task=task,
        degrees=degs,
        states=len(states),
        f_value=round(v0, 4),
        f_slope_per_degree=round(norm * radius * math.pi / 180 / scale, 5),
        f_predicted_gain=[round(p, 4) for p in predicted[: len(degs)]],
        zero_shot_return=round(zs_ret, 2),
        returns=[round(float(r.mean()), 2) for r in returns[1 : 1 + len(degs)]],
        gain=gains[: len(degs)],
        gain_ci95=cis[: len(degs)],
        verdict=verdict,
        seeds=[int(s) for s in seeds],
        action_change=round(target, 5),
        random_degrees=[float(a) for a in matched],
        random_gain=gains[len(degs):],
        random_f_predicted_gain=[round(p, 4) for p in predicted[len(degs):]],
        gain_over_random=over,
        gain_over_random_ci95=over_ci,
        versus_random=versus,
        path=path,
        direction=[round(float(x), 6) for x in norm_dir],
    )
