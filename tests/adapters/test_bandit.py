"""OpTI-BFM's estimator on synthetic linear problems with known features."""

from __future__ import annotations

import numpy as np
import pytest

from bfm_gym.adapters.bandit import LinearBandit, ucb_scores


def test_square_root_updates_match_direct_least_squares() -> None:
    rng = np.random.default_rng(0)
    d, n = 6, 40
    phi = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    r = phi @ w + 0.01 * rng.normal(size=n)
    bandit = LinearBandit(d, lam=0.5)
    bandit.update(phi[:10], r[:10])
    for i in range(10, n):
        bandit.update(phi[i], r[i])
    V = 0.5 * np.eye(d) + phi.T @ phi
    np.testing.assert_allclose(bandit.V, V, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bandit.w_hat(), np.linalg.solve(V, phi.T @ r), rtol=1e-8)
    x = rng.normal(size=(3, d))
    np.testing.assert_allclose(bandit.norm_inv(x),
                               np.sqrt(np.einsum("nd,de,ne->n", x, np.linalg.inv(V), x)), rtol=1e-8)


def test_long_runs_stay_exact_and_batch_equals_sequential() -> None:
    """10^5 rank-1 updates at d = 100 (an OpTI run of 100 maze episodes) vs a direct solve."""
    rng = np.random.default_rng(3)
    d, n = 100, 100_000
    phi = rng.normal(size=(n, d)) * rng.uniform(0.01, 3.0, size=d)  # badly scaled features
    r = phi @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
    seq = LinearBandit(d, kappa=1e-300)  # a gate of ~0 passes everything, row by row
    for i in range(0, n, 20_000):
        seq.update(phi[i:i + 20_000], r[i:i + 20_000])
    batch = LinearBandit(d)
    batch.update(phi, r)
    V = np.eye(d) + phi.T @ phi
    w = np.linalg.solve(V, phi.T @ r)
    for b in (seq, batch):
        np.testing.assert_allclose(b.w_hat(), w, rtol=1e-8, atol=1e-10)
        x = rng.normal(size=(4, d))
        np.testing.assert_allclose(b.norm_inv(x), np.sqrt(np.einsum("nd,de,ne->n", x, np.linalg.inv(V), x)),
                                   rtol=1e-8)
    assert seq.updates == batch.updates == n


def test_state_from_the_cholesky_format_loads() -> None:
    """Runs saved before the square-root form stored the Cholesky factor L of V."""
    rng = np.random.default_rng(4)
    phi, r = rng.normal(size=(30, 5)), rng.normal(size=30)
    bandit = LinearBandit(5)
    bandit.update(phi, r)
    legacy = {"L": np.linalg.cholesky(np.eye(5) + phi.T @ phi), "b": phi.T @ r,
              "counts": np.array([30, 0])}
    old = LinearBandit(5)
    old.load_state_dict(legacy)
    np.testing.assert_allclose(old.w_hat(), bandit.w_hat(), rtol=1e-10)
    with pytest.raises(ValueError, match="neither 'M' nor 'L'"):
        old.load_state_dict({"b": legacy["b"], "counts": legacy["counts"]})


def test_estimator_recovers_w_and_ucb_regret_falls() -> None:
    """A finite-arm linear bandit: arms have known features psi_k, reward psi_k . w + noise."""
    rng = np.random.default_rng(1)
    d, arms, rounds = 8, 64, 600
    w = rng.normal(size=d)
    w /= np.linalg.norm(w)
    psi = rng.normal(size=(arms, d))
    best = (psi @ w).max()
    bandit = LinearBandit(d, lam=1.0)
    regret = []
    for _ in range(rounds):
        scores = ucb_scores(psi[None], bandit, beta=0.5)
        k = int(np.argmax(scores))
        bandit.update(psi[k], psi[k] @ w + 0.1 * rng.normal())
        regret.append(best - psi[k] @ w)
    regret = np.asarray(regret)
    assert regret[-100:].mean() < 0.25 * regret[:100].mean()   # regret per round falls
    assert np.cos(np.arccos(np.clip(bandit.w_hat() @ w / np.linalg.norm(bandit.w_hat()), -1, 1))) > 0.8


def test_decay_kappa_sampling_and_state() -> None:
    rng = np.random.default_rng(2)
    bandit = LinearBandit(4, kappa=5.0)  # gate: only very informative updates pass
    assert bandit.update(np.full(4, 1e-3), 1.0) == 0 and bandit.skipped == 1
    forgetting = LinearBandit(4, decay=0.5)
    forgetting.update(np.eye(4)[0], 1.0)
    forgetting.update(np.eye(4)[1], 1.0)
    # V = 0.5 (0.5 I + e0 e0^T) + e1 e1^T: the decay forgets the prior and old data alike
    assert forgetting.V[0, 0] == pytest.approx(0.75) and forgetting.V[1, 1] == pytest.approx(1.25)
    pts = forgetting.sample_ellipsoid(500, 2.0, rng)
    diff = pts - forgetting.w_hat()
    maha = np.sqrt(np.einsum("nd,de,ne->n", diff, forgetting.V, diff))
    assert maha.max() <= 2.0 + 1e-9 and maha.mean() > 1.0
    fresh = LinearBandit(4, decay=0.5)
    fresh.load_state_dict(forgetting.state_dict())
    np.testing.assert_array_equal(fresh.w_hat(), forgetting.w_hat())
    with pytest.raises(ValueError, match="NaN"):
        fresh.update(np.full(4, np.nan), 0.0)
    with pytest.raises(ValueError, match="decay"):
        LinearBandit(3, decay=0.0)
