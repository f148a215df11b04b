"""Run the frozen policy ``pi(s, z)`` for whole episodes and summarise returns.

:func:`rollout_returns` runs episodes in lockstep over ``n`` envs with one batched
policy call per step, which is several times faster on a CPU than one forward per env.
:func:`play_episode` plays one episode from a given reset seed, with a fixed action
per observation (e.g. a frozen z on the latent-action wrapper); adapters evaluate
through it (:meth:`bfm_gym.adapters.base.Adapter.run_episode` with ``learn=False``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bfm_gym.envs.dmc_env import EPISODE_STEPS
from bfm_gym.evaluation.aggregate import bootstrap_replicates


@dataclass
class EvalResult:
    """Returns of evaluation episodes on one task.

    Attributes:
        task: Task label (name or ``reach@x,y``).
        returns: Undiscounted return of each episode.
        mean: Mean return.
        ci95: 95 % bootstrap percentile interval of the mean (10k resamples, seed 0).
        seed: Seed of the first episode's reset (episode ``k`` uses ``seed + k``).
    """

    task: str
    returns: list[float]
    mean: float
    ci95: tuple[float, float]
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d


def summarize(task: str, returns: np.ndarray, seed: int, **extra: Any) -> EvalResult:
    """Mean and a 95 % bootstrap interval of ``returns``
    (:func:`~bfm_gym.evaluation.aggregate.bootstrap_replicates` with one stratum)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size == 1:
        ci = (float(r[0]), float(r[0]))
    elif not np.isfinite(r).all():  # the bootstrap would drop them; the mean is not finite either
        ci = (float("nan"), float("nan"))
    else:  # one stratum: the percentile bootstrap of the mean
        means = bootstrap_replicates({task: r}, "mean", reps=10_000, seed=0)
        ci = (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))
    return EvalResult(task=task, returns=[round(float(x), 3) for x in r], mean=round(float(r.mean()), 3),
                      ci95=(round(ci[0], 3), round(ci[1], 3)), seed=int(seed), extra=extra)


def play_episode(env: Any, seed: int, act: Callable[[np.ndarray], Any]) -> tuple[float, int]:
    """Plays one episode from ``env.reset(seed=seed)`` with ``act(obs)`` as the action.

    Args:
        env: A Gymnasium env, e.g. the latent-action wrapper (actions are z).
        seed: Reset seed of the episode.
        act: Observation -> action.

    Returns:
        ``(return, env steps)``: a step whose ``info`` holds ``"transitions"`` (the latent
        wrapper holding one z for several env steps) counts as that many env steps.
    """
    obs, _ = env.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, info = env.step(act(obs))
        transitions = info.get("transitions")
        steps += len(transitions) if transitions is not None else 1
        total += float(r)
        done = bool(term or trunc)
    return total, steps


def rollout_returns(
    make_env: Callable[[], Any],
    policy: Callable[[np.ndarray], np.ndarray],
    episodes: int,
    seed: int = 0,
    *,
    seeds: Sequence[int] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Runs ``episodes`` full episodes in lockstep and returns their returns (an episode that
    terminates or truncates early stops there).

    Args:
        make_env: Builds one env (e.g. ``lambda: DMCEnv("walker", "run")``).
        policy: ``(n, obs_dim) float32 -> (n, act_dim)`` batched deterministic policy; row
            ``k`` is episode ``k``'s observation.
        episodes: Number of episodes (= envs run side by side).
        seed: Episode ``k`` resets with ``seed + k``.
        seeds: Episode ``k`` resets with ``seeds[k]`` instead (``len(seeds) == episodes``), e.g.
            the same start states repeated for several latents.
        progress: Show a progress bar over steps.

    Returns:
        ``(episodes,)`` float64 returns.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1; got {episodes}.")
    if seeds is not None and len(seeds) != episodes:
        raise ValueError(f"seeds has {len(seeds)} entries for {episodes} episodes; give one per episode.")
    starts = [int(s) for s in seeds] if seeds is not None else [seed + k for k in range(episodes)]
    envs = [make_env() for _ in range(episodes)]
    obs = np.stack([env.reset(seed=s)[0] for s, env in zip(starts, envs, strict=True)])
    returns = np.zeros(episodes)
    from tqdm.auto import trange

    done = np.zeros(episodes, dtype=bool)
    bar = trange(EPISODE_STEPS, disable=not progress, desc="eval", unit="step")
    while not done.all():  # DMC episodes all truncate at EPISODE_STEPS; others may end early
        actions = np.asarray(policy(obs))
        for k, env in enumerate(envs):
            if done[k]:
                continue
            o, r, terminated, truncated, _ = env.step(actions[k])
            obs[k] = o
            returns[k] += r
            done[k] = terminated or truncated
        bar.update()
    bar.close()
    for env in envs:
        env.close()
    return returns
