"""Latent headroom: how much better than the zero-shot z can *any* latent do on a task?

An adapter that searches z (OpTI-BFM, ReLA, LoLA, CEM...) can never beat the best latent
the frozen policy ``pi(s, z)`` has for a task. When an adapter misses a target such as "+30 %
over zero-shot", the first question is whether that much exists at all: if no z does more
than +5 %, the model is what limits, not the adapter. :func:`latent_headroom` answers it
with a search far larger than any adapter's budget:

1. **Search.** Cross-entropy over z on the latent sphere, started at the zero-shot z:
   each iteration draws ``population - 1`` latents ``proj(mean + std * noise)`` plus the
   current mean, plays each from the same ``search_seeds`` start states (common random
   numbers: candidates differ by z, not by luck of the start), keeps the ``elites`` best by
   mean return, and moves the mean to their projected mean (the per-coordinate std to
   their spread, smoothed and floored).
2. **Selection.** The best of thousands of noisy scores is partly luck (the winner's curse:
   on the maze, whose returns depend on the start room, the top-scoring latent of two start
   states lost 47 % on fresh ones). So the ``finalists`` best latents by search score, the
   search's final mean and the zero-shot z itself are replayed from ``selection_seeds``
   start states, none of them searched on, and the best there is the pick. When that is
   the zero-shot z, the search found nothing better and the headroom is 0.
3. **Validation.** The pick and the zero-shot z are replayed from fresh
   ``validation_seeds`` start states, used by neither step above: the pick was chosen for
   its selection score, which is biased upwards; the validation is not.

The headroom is ``(best - zero_shot) / |zero_shot|`` on the validation episodes, with a
95 % bootstrap interval of the paired difference. It is a **lower bound** on what a latent
can do (a search finds good latents, not provably the best one), so an adapter target
above it blames the model; a target below it that the adapter misses blames the adapter.
``benchmarks/latent_headroom.py`` runs it over every task of the shipped models.

Cost: ``iterations x population x len(search_seeds)`` episodes, ``(finalists + 2) x
len(selection_seeds)`` and ``2 x len(validation_seeds)``, all run in lockstep with one
batched policy call per step.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bfm_gym.evaluation.rollout import rollout_returns, summarize

__all__ = ["HeadroomResult", "latent_headroom", "latent_returns"]


@dataclass
class HeadroomResult:
    """What :func:`latent_headroom` found for one task.

    Attributes:
        task: Task name.
        zero_shot_return: Mean validation return of the zero-shot z.
        best_return: Mean validation return of the picked latent (the zero-shot z's own when
            the selection kept it).
        gain: ``(best_return - zero_shot_return) / |zero_shot_return|`` (None when the
            zero-shot return is 0).
        difference_ci95: 95 % bootstrap interval of the mean paired difference (best minus
            zero-shot, same validation start states).
        best_search_score: The best mean return of any latent on the search start states.
        zero_shot_search_score: The zero-shot z's mean return on the search start states.
        selection: The finalists' mean returns on the selection start states, in the order
            zero-shot z, final mean, then the finalists by search score, and which one was
            picked (``picked``: its index; 0 = the zero-shot z).
        episodes: Episodes played in all (search and validation).
        history: Per iteration: the best search score so far and the mean elite score.
        zero_shot_z: The zero-shot latent.
        best_z: The picked latent.
    """

    task: str
    zero_shot_return: float
    best_return: float
    gain: float | None
    difference_ci95: tuple[float, float]
    best_search_score: float
    zero_shot_search_score: float
    episodes: int
    history: list[dict[str, float]] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)
    zero_shot_z: list[float] = field(default_factory=list)
    best_z: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["difference_ci95"] = list(self.difference_ci95)
        return d


MAX_LOCKSTEP_ENVS = 256
"""Most episodes :func:`latent_returns` runs side by side (one env each): more latents than fit
run a group of whole latents at a time. 560 quadruped envs at once took ~11 GB. Up to this
many, the episodes run in one batch as they always did, so earlier results reproduce bit for
bit (a group's batched policy forward may round differently from a larger batch's)."""


def latent_returns(bfm: Any, make_env: Callable[[], Any], zs: np.ndarray,
                   seeds: Sequence[int]) -> np.ndarray:
    """Returns ``(len(zs), len(seeds))``: the return of ``pi(s, z_i)`` from reset seed ``seeds[j]``
    for every pair, all episodes in lockstep with one batched policy call per step."""
    zs = np.asarray(zs, dtype=np.float32)
    if zs.ndim != 2 or zs.shape[1] != bfm.z_dim:
        raise ValueError(f"zs must be (n, {bfm.z_dim}); got shape {zs.shape}.")
    k = len(seeds)
    if len(zs) > 1 and len(zs) * k > MAX_LOCKSTEP_ENVS:  # a few latents at a time
        group = max(1, MAX_LOCKSTEP_ENVS // k)
        return np.concatenate([latent_returns(bfm, make_env, zs[i : i + group], seeds)
                               for i in range(0, len(zs), group)])  # fmt: skip
    rows = np.repeat(zs, k, axis=0)
    returns = rollout_returns(make_env, lambda obs: bfm.act(obs, rows[: len(obs)]), len(rows),
                              seeds=[int(s) for s in seeds] * len(zs))
    return returns.reshape(len(zs), k)


def latent_headroom(
    bfm: Any,
    make_env: Callable[[], Any],
    zero_shot_z: np.ndarray,
    *,
    task: str = "",
    population: int = 16,
    elites: int = 4,
    iterations: int = 8,
    init_std: float = 0.5,
    min_std: float = 0.05,
    search_seeds: Sequence[int] = (0, 1, 2),
    finalists: int = 4,
    selection_seeds: Sequence[int] = tuple(range(500, 505)),
    validation_seeds: Sequence[int] = tuple(range(1000, 1010)),
    seed: int = 0,
    progress: bool = False,
) -> HeadroomResult:
    """Searches for a latent better than ``zero_shot_z`` and validates it (module docstring).

    Args:
        bfm: A loaded model (any family).
        make_env: Builds one env of the task (its reward is the one maximised).
        zero_shot_z: ``(z_dim,)`` the latent to beat; the search starts there.
        task: Label stored in the result.
        population: Latents per iteration (the current mean included).
        elites: Latents kept per iteration to refit the mean and std.
        iterations: Search iterations.
        init_std: Initial per-coordinate std of the search (a latent on the sphere has
            coordinates of rms 1, so 0.5 moves it by about 27 degrees).
        min_std: Floor of the per-coordinate std.
        search_seeds: Reset seeds every candidate is scored on.
        finalists: Best latents by search score replayed on ``selection_seeds``.
        selection_seeds: Reset seeds of the selection; must not overlap the others.
        validation_seeds: Fresh reset seeds for the final comparison; must not overlap
            the others.
        seed: Seed of the search noise.
        progress: Show a progress bar over iterations.

    Raises:
        ValueError: Bad sizes, or seed sets that overlap.
    """
    if not 1 <= elites < population:
        raise ValueError(f"Need 1 <= elites < population; got elites={elites}, population={population}.")
    if iterations < 1 or finalists < 1 or not (search_seeds and selection_seeds and validation_seeds):
        raise ValueError("iterations and finalists must be >= 1, and search_seeds, selection_seeds "
                         "and validation_seeds non-empty.")
    if init_std <= 0 or min_std <= 0:
        raise ValueError(f"init_std and min_std must be > 0; got {init_std}, {min_std}.")
    sets = {"search_seeds": set(map(int, search_seeds)), "selection_seeds": set(map(int, selection_seeds)),
            "validation_seeds": set(map(int, validation_seeds))}
    for (a, sa), (b, sb) in itertools.combinations(sets.items(), 2):
        if sa & sb:
            raise ValueError(f"{b} {sorted(sa & sb)} are also {a}; each step must use start states "
                             "the steps before it never saw.")
    from tqdm.auto import trange

    d = bfm.z_dim
    z0 = np.asarray(bfm.project(np.asarray(zero_shot_z, np.float32).reshape(1, d)), np.float32)[0]
    rng = np.random.default_rng(seed)
    mean, std = z0.astype(np.float64), np.full(d, float(init_std))
    best_score, z0_score = -np.inf, float("nan")
    scored: list[tuple[float, np.ndarray]] = []  # (search score, latent) of every candidate
    history: list[dict[str, float]] = []
    for it in trange(iterations, disable=not progress, desc=f"headroom {task}", unit="iter"):
        noise = rng.standard_normal((population - 1, d))
        cand = np.concatenate([mean[None], mean[None] + std * noise]).astype(np.float32)
        cand = np.asarray(bfm.project(cand), np.float32)
        scores = latent_returns(bfm, make_env, cand, search_seeds).mean(axis=1)
        if it == 0:
            z0_score = float(scores[0])  # the first mean is the zero-shot z itself
        top = np.argsort(-scores, kind="stable")[:elites]
        best_score = max(best_score, float(scores[top[0]]))
        scored += [(float(scores[i]), cand[i].copy()) for i in top]
        elite = cand[top].astype(np.float64)
        mean = np.asarray(bfm.project(elite.mean(axis=0, keepdims=True).astype(np.float32)),
                          np.float64)[0]
        std = np.maximum(0.5 * std + 0.5 * elite.std(axis=0), min_std)
        history.append({"iteration": it, "best_so_far": round(best_score, 3),
                        "elite_mean": round(float(scores[top].mean()), 3)})
    scored.sort(key=lambda t: -t[0])
    final = [z0, mean.astype(np.float32)]
    for _, z in scored:  # the best distinct latents (an elite may be an earlier mean, or z0)
        if len(final) == finalists + 2:
            break
        if not any(np.allclose(z, f, rtol=0, atol=1e-4) for f in final):
            final.append(z)
    final = np.stack(final)
    chosen = latent_returns(bfm, make_env, final, selection_seeds).mean(axis=1)
    picked = int(np.argmax(chosen))
    best_z = final[picked]
    val = latent_returns(bfm, make_env, np.stack([z0, best_z]), validation_seeds)
    diff = summarize(task or "task", val[1] - val[0], seed=int(validation_seeds[0]))
    z0_ret, best_ret = float(val[0].mean()), float(val[1].mean())
    return HeadroomResult(
        task=task,
        zero_shot_return=round(z0_ret, 3),
        best_return=round(best_ret, 3),
        gain=None if z0_ret == 0 else round((best_ret - z0_ret) / abs(z0_ret), 4),
        difference_ci95=diff.ci95,
        best_search_score=round(best_score, 3),
        zero_shot_search_score=round(z0_score, 3),
        episodes=(iterations * population * len(search_seeds) + len(final) * len(selection_seeds)
                  + 2 * len(validation_seeds)),
        history=history,
        selection={"returns": [round(float(v), 3) for v in chosen], "picked": picked},
        zero_shot_z=[round(float(v), 5) for v in z0],
        best_z=[round(float(v), 5) for v in best_z],
    )
