"""Aggregate statistics over runs: IQM, stratified bootstrap CIs, performance profiles.

Pure numpy (no env, torch or plotting imports), following the recommendations of
Agarwal et al., "Deep RL at the Edge of the Statistical Precipice" (NeurIPS 2021):

* **IQM** (interquartile mean) of the scores of all runs (tasks x seeds pooled): the
  mean of the middle 50 % after dropping ``floor(n / 4)`` runs at each end. This is
  exactly ``scipy.stats.trim_mean(x, 0.25)``, which is also what ``rliable`` computes,
  so numbers are comparable with published ones.
* **Stratified bootstrap CIs**: each replicate resamples, *within each task* (the
  strata), that task's runs (seeds) with replacement, pools them and recomputes the
  statistic; the interval is the percentile interval of the replicates (95 % by
  default). The point estimate is the statistic of the original scores.
* **Performance profiles**: for each threshold ``tau`` the fraction of runs with a
  score above ``tau``, averaged over tasks (each task weighted equally), with
  stratified bootstrap bands.
* **Probability of improvement** ``P(X > Y)``: per task, the chance that a run of X
  scores above a run of Y (the Mann-Whitney U statistic over all pairs of their runs,
  ties counting one half), averaged over tasks; bootstrap intervals resample each
  method's runs within each task.

Why not the ``rliable`` package: it needs ``arch`` (and pulls ``seaborn`` and old
pins) for a few dozen lines of numpy; we need vectorised replicates over small
tables, NaN-aware strata (a cell whose normaliser is undefined drops out of its task)
and no extra dependency in CI. The statistics match its definitions (IQM =
``trim_mean(x, 0.25)``, percentile intervals, stratified resampling); tests check
the IQM against hand-computed values and ``scipy``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "STATISTICS",
    "Interval",
    "bootstrap_band",
    "bootstrap_replicates",
    "iqm",
    "performance_profile",
    "probability_of_improvement",
    "stratified_bootstrap",
]

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps ``(reps, n_runs)`` scores to ``(reps,)`` values (row-wise statistic)."""


def iqm(x: np.ndarray | Sequence[float], axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis``: the mean after dropping ``floor(n/4)`` values
    at each end (``scipy.stats.trim_mean(x, 0.25, axis)``).

    Args:
        x: Scores, e.g. ``(n_runs,)`` or ``(reps, n_runs)``.
        axis: Axis holding the runs.

    Returns:
        The IQM with ``axis`` removed (a 0-d array for 1-d input).

    Raises:
        ValueError: No values along ``axis``.
    """
    a = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = a.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty set of scores.")
    cut = n // 4
    return np.take(a, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def _mean(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).mean(axis=-1)


def _median(x: np.ndarray) -> np.ndarray:
    return np.median(np.asarray(x, dtype=np.float64), axis=-1)


STATISTICS: dict[str, Statistic] = {"iqm": iqm, "mean": _mean, "median": _median}
"""Row-wise statistics by name."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap confidence interval.

    Attributes:
        value: The statistic of the original scores.
        low: Lower end of the interval.
        high: Upper end of the interval.
        n: Runs that entered (NaN scores dropped).
    """

    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready ``{"value", "low", "high", "n"}``."""
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def _strata(scores: Mapping[str, Sequence[float] | np.ndarray]) -> list[np.ndarray]:
    out = []
    for values in scores.values():
        a = np.asarray(values, dtype=np.float64).ravel()
        a = a[np.isfinite(a)]
        if a.size:
            out.append(a)
    return out


def _replicates(strata: list[np.ndarray], reps: int, rng: np.random.Generator) -> np.ndarray:
    """``(reps, n_runs)`` pooled scores, each stratum resampled with replacement."""
    parts = [s[rng.integers(0, s.size, size=(reps, s.size))] for s in strata]
    return np.concatenate(parts, axis=1)


def stratified_bootstrap(
    scores: Mapping[str, Sequence[float] | np.ndarray],
    statistic: str | Statistic = "iqm",
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Statistic of the pooled runs with a stratified-bootstrap percentile interval.

    Args:
        scores: Task -> scores of its runs (one per seed), e.g. ``{"walk": [1.1, 0.9]}``.
            Non-finite scores are dropped; tasks left empty are ignored.
        statistic: ``"iqm"``, ``"mean"``, ``"median"`` or a row-wise function
            ``(reps, n_runs) -> (reps,)``.
        reps: Bootstrap replicates.
        confidence: Coverage of the interval (``0.95``: 2.5th to 97.5th percentile).
        seed: Seed of the resampling RNG (intervals are reproducible).

    Returns:
        The :class:`Interval`; all NaN with ``n=0`` when no finite score is left.

    Raises:
        ValueError: Unknown statistic name, ``reps < 1`` or ``confidence`` outside (0, 1).
    """
    fn = _statistic(statistic)
    if reps < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need reps >= 1 and 0 < confidence < 1; got reps={reps}, confidence={confidence}.")
    strata = _strata(scores)
    if not strata:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    pooled = np.concatenate(strata)
    point = float(fn(pooled[None, :])[0])
    boot = bootstrap_replicates(scores, fn, reps=reps, seed=seed)
    alpha = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [alpha, 100.0 - alpha])
    return Interval(point, float(low), float(high), int(pooled.size))


def bootstrap_replicates(
    scores: Mapping[str, Sequence[float] | np.ndarray],
    statistic: str | Statistic = "iqm",
    *,
    reps: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """The statistic of ``reps`` stratified resamples of ``scores`` (the bootstrap
    distribution behind :func:`stratified_bootstrap`).

    Each task's finite scores are resampled with replacement, the resamples pooled, and
    the statistic taken per replicate; with one task this is the plain percentile
    bootstrap (e.g. :func:`bfm_gym.evaluation.rollout.summarize`).

    Args:
        scores: Task -> scores of its runs; non-finite scores are dropped.
        statistic: ``"iqm"``, ``"mean"``, ``"median"`` or a row-wise function.
        reps: Bootstrap replicates.
        seed: Seed of the resampling RNG.

    Returns:
        ``(reps,)`` values; empty when no finite score is left.

    Raises:
        ValueError: Unknown statistic name or ``reps < 1``.
    """
    fn = _statistic(statistic)
    if reps < 1:
        raise ValueError(f"need reps >= 1; got reps={reps}.")
    strata = _strata(scores)
    if not strata:
        return np.empty(0)
    return fn(_replicates(strata, reps, np.random.default_rng(seed)))


def performance_profile(
    scores: Mapping[str, Sequence[float] | np.ndarray],
    taus: Sequence[float] | np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of runs with a score above each ``tau`` (mean over tasks), with bands.

    Args:
        scores: Task -> scores of its runs; non-finite scores are dropped.
        taus: Thresholds, shape ``(n_tau,)``.
        reps: Bootstrap replicates (stratified by task).
        confidence: Coverage of the bands.
        seed: Seed of the resampling RNG.

    Returns:
        ``(fraction, low, high)``, each ``(n_tau,)``; NaN when no finite score is left.
    """
    t = np.asarray(taus, dtype=np.float64)
    strata = _strata(scores)
    if not strata:
        nan = np.full(t.shape, np.nan)
        return nan, nan.copy(), nan.copy()
    point = np.mean([(s[:, None] > t[None, :]).mean(axis=0) for s in strata], axis=0)
    rng = np.random.default_rng(seed)
    boot = np.zeros((reps, t.size))
    for s in strata:
        sample = s[rng.integers(0, s.size, size=(reps, s.size))]  # (reps, n)
        boot += (sample[:, :, None] > t[None, None, :]).mean(axis=1)
    boot /= len(strata)
    alpha = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [alpha, 100.0 - alpha], axis=0)
    return point, low, high


def probability_of_improvement(
    x: Mapping[str, Sequence[float] | np.ndarray],
    y: Mapping[str, Sequence[float] | np.ndarray],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``P(X > Y)`` averaged over the tasks both methods have finite scores on.

    Args:
        x: Task -> scores of method X's runs (one per seed).
        y: Task -> scores of method Y's runs; the two may have different seeds.
        reps: Bootstrap replicates (runs of each method resampled within each task).
        confidence: Coverage of the interval.
        seed: Seed of the resampling RNG.

    Returns:
        The :class:`Interval` (``n`` = number of tasks compared); all NaN with ``n=0``
        when no task has finite scores for both.
    """
    pairs = []
    for task in x:
        if task not in y:
            continue
        a = np.asarray(x[task], dtype=np.float64).ravel()
        b = np.asarray(y[task], dtype=np.float64).ravel()
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size and b.size:
            pairs.append((a, b))
    if not pairs:
        return Interval(float("nan"), float("nan"), float("nan"), 0)

    def _u(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # (..., m), (..., n) -> (...,)
        diff = a[..., :, None] - b[..., None, :]
        return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-2, -1))

    point = float(np.mean([_u(a, b) for a, b in pairs]))
    rng = np.random.default_rng(seed)
    boot = np.zeros(reps)
    for a, b in pairs:
        boot += _u(a[rng.integers(0, a.size, size=(reps, a.size))], b[rng.integers(0, b.size, size=(reps, b.size))])
    boot /= len(pairs)
    alpha = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [alpha, 100.0 - alpha])
    return Interval(point, float(low), float(high), len(pairs))


def bootstrap_band(
    values: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs at each point of a curve, with a bootstrap band (runs resampled).

    Args:
        values: ``(n_runs, n_points)``, e.g. seeds x budget points; NaN = no value yet.
        reps: Bootstrap replicates (whole runs are resampled, keeping each curve intact).
        confidence: Coverage of the band.
        seed: Seed of the resampling RNG.

    Returns:
        ``(mean, low, high)``, each ``(n_points,)``; NaN where no run has a value.
    """
    v = np.asarray(values, dtype=np.float64)
    n_points = v.shape[1]
    if v.shape[0] == 0 or n_points == 0:
        nan = np.full(n_points, np.nan)
        return nan, nan.copy(), nan.copy()
    idx = np.random.default_rng(seed).integers(0, v.shape[0], size=(reps, v.shape[0]))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns -> NaN
        mean = np.nanmean(v, axis=0)
        boot = np.nanmean(v[idx], axis=1)  # (reps, n_points)
        alpha = 100.0 * (1.0 - confidence) / 2.0
        low, high = np.nanpercentile(boot, [alpha, 100.0 - alpha], axis=0)
    return mean, low, high


def _statistic(statistic: str | Statistic) -> Statistic:
    if callable(statistic):
        return statistic
    if statistic not in STATISTICS:
        raise ValueError(f"Unknown statistic {statistic!r}; choose from {', '.join(STATISTICS)}.")
    return STATISTICS[statistic]
