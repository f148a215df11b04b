"""Aggregates: IQM against hand-computed values and scipy, stratified bootstrap, profiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import trim_mean

from bfm_gym.evaluation.aggregate import (
    bootstrap_band,
    iqm,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap,
)


def test_iqm_hand_computed() -> None:
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)  # middle four: 3, 4, 5, 6
    assert iqm([0, 0, 1, 10, 10, 10, 10, 100]) == pytest.approx(7.75)  # 1, 10, 10, 10
    assert iqm([1, 2, 3]) == pytest.approx(2.0)  # n < 4: nothing trimmed
    assert iqm([5.0]) == pytest.approx(5.0)
    # a small tasks x seeds table, pooled: 12 runs, 3 dropped at each end
    table = np.array([[0.2, 0.9, 1.4], [1.0, 1.1, 3.0], [0.5, 0.7, 0.8], [2.0, 0.1, 1.2]])
    assert iqm(table.ravel()) == pytest.approx(np.mean([0.7, 0.8, 0.9, 1.0, 1.1, 1.2]))
    with pytest.raises(ValueError, match="empty"):
        iqm([])


@pytest.mark.parametrize("n", range(1, 14))
def test_iqm_equals_scipy_trim_mean(n: int) -> None:
    x = np.random.default_rng(n).normal(size=(3, n)) * 10
    np.testing.assert_allclose(iqm(x, axis=1), trim_mean(x, 0.25, axis=1))
    np.testing.assert_allclose(iqm(x.T, axis=0), trim_mean(x, 0.25, axis=1))


def test_stratified_bootstrap_contains_point_and_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    scores = {"walk": rng.normal(1.0, 0.2, 5), "run": rng.normal(0.6, 0.3, 5)}
    iv = stratified_bootstrap(scores, "iqm", reps=1000, seed=3)
    assert iv.low <= iv.value <= iv.high and iv.n == 10
    assert iv.value == pytest.approx(float(trim_mean(np.concatenate(list(scores.values())), 0.25)))
    assert stratified_bootstrap(scores, "iqm", reps=1000, seed=3) == iv
    wider = stratified_bootstrap(scores, "iqm", reps=1000, seed=3, confidence=0.99)
    assert wider.low <= iv.low and wider.high >= iv.high
    mean = stratified_bootstrap(scores, "mean", reps=1000)
    assert mean.low <= mean.value <= mean.high


def test_bootstrap_resamples_within_tasks() -> None:
    # Task a always scores 0, task b always 1: every stratified replicate keeps two runs
    # of each, so the pooled mean is exactly 0.5 (an unstratified bootstrap would vary).
    iv = stratified_bootstrap({"a": [0.0, 0.0], "b": [1.0, 1.0]}, "mean", reps=500)
    assert (iv.value, iv.low, iv.high) == (0.5, 0.5, 0.5)


def test_bootstrap_drops_nan_runs_and_empty_tasks() -> None:
    iv = stratified_bootstrap({"a": [1.0, np.nan, 3.0], "b": [np.nan]}, "mean", reps=200)
    assert iv.n == 2 and iv.value == pytest.approx(2.0)
    empty = stratified_bootstrap({"a": [np.nan]}, "iqm")
    assert empty.n == 0 and np.isnan(empty.value)
    with pytest.raises(ValueError, match="Unknown statistic 'best'"):
        stratified_bootstrap({"a": [1.0]}, "best")
    with pytest.raises(ValueError, match="reps >= 1"):
        stratified_bootstrap({"a": [1.0]}, reps=0)


def test_performance_profile_hand_computed() -> None:
    scores = {"a": [0.5, 1.5, 2.5, 3.5], "b": [0.0, 0.0, 2.0, 2.0]}
    frac, lo, hi = performance_profile(scores, [0.25, 1.0, 3.0], reps=300)
    # a: 4/4, 3/4, 1/4 above tau; b: 2/4, 2/4, 0/4; mean over tasks
    np.testing.assert_allclose(frac, [0.75, 0.625, 0.125])
    assert np.all(lo <= frac + 1e-12) and np.all(frac <= hi + 1e-12)


def test_bootstrap_band() -> None:
    curves = np.array([[1.0, 2.0, np.nan], [3.0, 4.0, np.nan]])
    mean, lo, hi = bootstrap_band(curves, reps=300)
    np.testing.assert_allclose(mean[:2], [2.0, 3.0])
    assert np.isnan(mean[2]) and np.isnan(lo[2])
    assert lo[0] >= 1.0 and hi[0] <= 3.0 and lo[0] <= 2.0 <= hi[0]


def test_probability_of_improvement_hand_computed() -> None:
    # task a: X {3, 1} vs Y {2, 1}: pairs 3>2, 3>1, 1<2, 1=1 -> (1 + 1 + 0 + 0.5) / 4 = 0.625
    # task b: X {5} vs Y {4, 6}: 0.5; task c only in X; NaN runs dropped.
    x = {"a": [3.0, 1.0], "b": [5.0, float("nan")], "c": [9.0]}
    y = {"a": [2.0, 1.0], "b": [4.0, 6.0]}
    poi = probability_of_improvement(x, y, reps=500, seed=1)
    assert poi.value == pytest.approx((0.625 + 0.5) / 2)
    assert poi.n == 2 and 0.0 <= poi.low <= poi.value <= poi.high <= 1.0
    assert probability_of_improvement(y, x, reps=10).value == pytest.approx(1 - poi.value)
    assert probability_of_improvement(x, y, reps=500, seed=1) == poi  # reproducible
    assert probability_of_improvement({"a": [1.0]}, {"b": [1.0]}).n == 0


def test_old_module_path_still_works_with_a_warning() -> None:
    import importlib
    import sys

    sys.modules.pop("bfm_gym.experiments.aggregate", None)
    with pytest.warns(DeprecationWarning, match="evaluation.aggregate"):
        old = importlib.import_module("bfm_gym.experiments.aggregate")
    assert old.stratified_bootstrap is stratified_bootstrap and old.iqm is iqm
