"""OpTI-BFM against the official implementation (ThomasRupf/opti-bfm) on a recorded stream.

``data/opti_official_stream.npz`` was written by ``benchmarks/opti_official_harness.py
--fixture``: 120 transitions of the shipped walker model (its ``phi`` of the
next-states and the walk rewards), the unit-ball draws, tie-breaking noise and normals
fed to both sides, ``psi`` of the candidates, and what the official code (its
``utils/blr.py`` run under JAX in float64, its agent loop transcribed) computed from
them: estimates, design matrix, candidates, UCB scores, chosen index, Thompson draws,
the kappa/decay gate's decisions and the TS warm start. Nothing here needs JAX.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bfm_gym.adapters.bandit import LinearBandit, ucb_scores, uniform_ball

DATA = Path(__file__).parent / "data" / "opti_official_stream.npz"


@pytest.fixture(scope="module")
def fx() -> dict[str, np.ndarray]:
    with np.load(DATA, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _params(fx: dict[str, np.ndarray]) -> tuple[float, float, float, float, int, float]:
    beta, kappa, decay, sigma, warm, lam = fx["params"]
    return float(beta), float(kappa), float(decay), float(sigma), int(warm), float(lam)


def test_estimator_candidates_scores_and_choice_match_official(fx: dict[str, np.ndarray]) -> None:
    beta, _, _, _, _, lam = _params(fx)
    phi, reward = fx["phi"], fx["reward"]
    bandit = LinearBandit(phi.shape[1], lam=lam)
    done = 0
    for k, t in enumerate(fx["sel_steps"]):
        for i in range(done, int(t)):  # one transition at a time, as the adapter sees them
            bandit.update(phi[i], reward[i])
        done = int(t)
        np.testing.assert_allclose(bandit.w_hat(), fx["mean"][k], rtol=1e-9, atol=1e-12)
        cands = bandit.w_hat() + bandit.offsets(2 * beta * fx["u"][k], "official")
        np.testing.assert_allclose(cands, fx["cands"][k], rtol=1e-9, atol=1e-12)
        scores = ucb_scores(fx["psi"][k], bandit, beta)
        np.testing.assert_allclose(scores, fx["scores"][k], rtol=1e-9, atol=1e-12)
        assert int(np.argmax(scores + 1e-8 * fx["tie"][k])) == int(fx["chosen"][k])
        if t > 0:  # the exact ellipsoid is another set of points on the same draws
            exact = bandit.w_hat() + bandit.offsets(2 * beta * fx["u"][k], "exact")
            assert np.abs(exact - fx["cands"][k]).max() > 1e-3
    np.testing.assert_allclose(bandit.V, fx["prec_final"], rtol=1e-10, atol=1e-10)


def test_thompson_posterior_and_draws_match_official(fx: dict[str, np.ndarray]) -> None:
    _, _, _, sigma, _, lam = _params(fx)
    phi, reward = fx["phi"], fx["reward"]
    bandit = LinearBandit(phi.shape[1], lam=lam, noise_std=sigma)
    done = 0
    for k, t in enumerate(fx["sel_steps"]):
        for i in range(done, int(t)):
            bandit.update(phi[i], reward[i])
        done = int(t)
        np.testing.assert_allclose(bandit.w_hat(), fx["ts_mean"][k], rtol=1e-7, atol=1e-10)
        draw = bandit.w_hat() + bandit.offsets(fx["eps"][k][None], "official")[0]
        np.testing.assert_allclose(draw, fx["ts_sample"][k], rtol=1e-7, atol=1e-10)
    # sample_posterior maps its own normals through the same offsets
    eps = np.random.default_rng(5).standard_normal((1, phi.shape[1]))
    np.testing.assert_allclose(bandit.sample_posterior(np.random.default_rng(5), "official"),
                               bandit.w_hat() + bandit.offsets(eps, "official")[0], rtol=1e-12)


def test_kappa_gate_and_decay_match_official(fx: dict[str, np.ndarray]) -> None:
    _, kappa, decay, _, _, lam = _params(fx)
    assert kappa > 0 and decay < 1
    phi, reward = fx["phi"], fx["reward"]
    bandit = LinearBandit(phi.shape[1], lam=lam, kappa=kappa, decay=decay)
    mask = np.array([bandit.update(phi[i], reward[i]) == 1 for i in range(len(phi))])
    np.testing.assert_array_equal(mask, fx["gated_mask"])
    assert 0 < mask.sum() < len(mask)  # the gate both kept and skipped transitions
    np.testing.assert_allclose(bandit.w_hat(), fx["gated_mean_final"], rtol=1e-9, atol=1e-12)


def test_ts_warm_start_weighs_dataset_labels_at_unit_noise(fx: dict[str, np.ndarray]) -> None:
    _, _, _, sigma, warm, lam = _params(fx)
    bandit = LinearBandit(fx["phi"].shape[1], lam=lam, noise_std=sigma)
    bandit.update(fx["phi"][:warm], fx["reward"][:warm], noise_std=1.0)
    np.testing.assert_allclose(bandit.w_hat(), fx["warm_ts_mean"], rtol=1e-9, atol=1e-12)


def test_adapter_selects_with_the_official_rule(fx: dict[str, np.ndarray]) -> None:
    """OptiAdapter.select is the fixture's rule: official offsets, min-head UCB, tie noise."""
    import bfm_gym
    from bfm_gym.adapters.opti import OptiAdapter

    bfm = bfm_gym.load("walker")
    beta = 0.1
    adapter = OptiAdapter(bfm, {"domain": "walker", "task": "walk", "goal": None},
                          {"beta": beta, "candidates": 16, "geometry": "official"}, seed=3)
    adapter.bandit.update(fx["phi"][:40], fx["reward"][:40])
    obs = np.random.default_rng(1).normal(size=bfm.obs_dim).astype(np.float32)
    rng = np.random.default_rng(0)
    rng.bit_generator.state = adapter.rng.bit_generator.state
    z = adapter.select(obs)
    u = uniform_ball(16, bfm.z_dim, 2 * beta, rng)
    cand = (adapter.bandit.w_hat() + adapter.bandit.offsets(u, "official")).astype(np.float32)
    zs = np.asarray(bfm.project(cand), dtype=np.float32)
    psi = np.asarray(bfm.psi(np.repeat(obs[None], 16, axis=0), zs))
    k = int(np.argmax(ucb_scores(psi, adapter.bandit, beta) + 1e-8 * rng.uniform(size=16)))
    np.testing.assert_allclose(z, zs[k], rtol=1e-6)
