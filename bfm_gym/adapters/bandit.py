"""OpTI-BFM's estimator: regularised least squares on phi, and optimistic selection.

The reward is modelled as linear in the BFM's state features, ``r(s') ~ phi(s')^T w``
with ``phi = Cov(B)^{-1} B`` (REFERENCE §0, §5.2). With ``V_0 = lambda I`` and
``b_0 = 0`` each labelled transition updates::

    V <- decay * V + phi phi^T,     b <- decay * b + r phi,     w_hat = V^{-1} b

We keep the lower Cholesky factor ``L`` of ``V`` (``V = L L^T``) and update it with
rank-1 updates, so ``||x||_{V^{-1}} = ||L^{-1} x||`` is a triangular solve and no
inverse is ever formed (REFERENCE pitfall 10). ``kappa`` gates updates whose
information gain ``||phi||^2_{V^{-1}}`` is below ``e^kappa - 1``.

UCB (REFERENCE §5.3): among candidate latents ``z_c``, pick the one maximising
``min_heads [ psi_h(s, z_c)^T w_hat + beta ||psi_h(s, z_c)||_{V^{-1}} ]``, with
``psi`` the BFM's successor features at the current state (policy-mean action).
Thompson sampling (§5.4) draws ``w ~ N(w_hat, V^{-1})`` instead.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LinearBandit", "ucb_scores"]


class LinearBandit:
    """Regularised least squares with a Cholesky-factored design matrix.

    Args:
        dim: Feature dimension d.
        lam: Prior precision ``lambda`` (``V_0 = lambda I``).
        decay: Forgetting factor in (0, 1]; 1 = no forgetting.
        kappa: Update gate: skip transitions with ``||phi||^2_{V^-1} < e^kappa - 1``.
        noise_std: Observation noise ``sigma``: features and rewards are divided by it
            (TS uses sigma = 0.01 with lam = 1, i.e. precision ``I + sum phi phi^T / sigma^2``).
    """

    def __init__(self, dim: int, lam: float = 1.0, decay: float = 1.0, kappa: float = 0.0,
                 noise_std: float = 1.0) -> None:
        if dim < 1 or lam <= 0 or not 0 < decay <= 1 or noise_std <= 0:
            raise ValueError(
                f"LinearBandit needs dim >= 1, lam > 0, 0 < decay <= 1, noise_std > 0; got "
                f"dim={dim}, lam={lam}, decay={decay}, noise_std={noise_std}."
            )
        self.dim, self.lam, self.decay, self.kappa, self.noise_std = dim, lam, decay, kappa, noise_std
        self.L = np.sqrt(lam) * np.eye(dim)
        self.b = np.zeros(dim)
        self.updates = 0
        self.skipped = 0
        self._cache: tuple[np.ndarray, np.ndarray] | None = None  # (L^{-1}, w_hat)

    # -- estimator ----------------------------------------------------------------------

    def update(self, phi: np.ndarray, reward: np.ndarray | float) -> int:
        """Adds labelled transitions; returns how many passed the ``kappa`` gate.

        Args:
            phi: ``(d,)`` or ``(n, d)`` features of the next states.
            reward: ``()`` or ``(n,)`` rewards of those transitions.
        """
        x = np.atleast_2d(np.asarray(phi, dtype=np.float64)) / self.noise_std
        r = np.atleast_1d(np.asarray(reward, dtype=np.float64)) / self.noise_std
        if x.shape[1] != self.dim or r.shape[0] != x.shape[0]:
            raise ValueError(f"update: phi {x.shape} and reward {r.shape} do not match dim {self.dim}.")
        if not (np.isfinite(x).all() and np.isfinite(r).all()):
            raise ValueError("update: phi or reward holds NaN/inf.")
        threshold = math.expm1(self.kappa)
        used = 0
        for xi, ri in zip(x, r, strict=True):
            if threshold > 0 and self.norm_inv(xi)[0] ** 2 < threshold:
                self.skipped += 1
                continue
            if self.decay < 1:
                self.L *= math.sqrt(self.decay)
                self.b *= self.decay
            _chol_rank1_update(self.L, xi.copy())
            self.b += ri * xi
            self._cache = None
            used += 1
        self.updates += used
        return used

    @property
    def V(self) -> np.ndarray:
        """The design matrix ``V = L L^T`` (formed on request)."""
        return self.L @ self.L.T

    def _factors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(L^{-1}, w_hat)``, recomputed by one triangular solve after each update.

        Selection evaluates ``||x||_{V^-1} = ||L^{-1} x||`` for hundreds of candidates per
        step; with the triangular inverse cached that is one matmul instead of a solve.
        """
        if self._cache is None:
            l_inv = _solve_lower(self.L, np.eye(self.dim))
            y = l_inv @ self.b
            self._cache = (l_inv, l_inv.T @ y)
        return self._cache

    def w_hat(self) -> np.ndarray:
        """Least-squares estimate ``V^{-1} b``, shape ``(d,)``."""
        return self._factors()[1].copy()

    def norm_inv(self, x: np.ndarray) -> np.ndarray:
        """``||x||_{V^{-1}}`` for each row of ``x`` (``(d,)`` or ``(n, d)``) -> ``(n,)``."""
        xs = np.atleast_2d(np.asarray(x, dtype=np.float64))
        y = xs @ self._factors()[0].T  # rows of L^{-1} x
        return np.sqrt((y * y).sum(1))

    # -- sampling ---------------------------------------------------------------------

    def sample_ellipsoid(self, n: int, radius: float, rng: np.random.Generator) -> np.ndarray:
        """``n`` points uniform in ``{w_hat + V^{-1/2} u : ||u|| <= radius}``, ``(n, d)``."""
        u = rng.standard_normal((n, self.dim))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        u *= radius * rng.uniform(size=(n, 1)) ** (1.0 / self.dim)
        # w_hat + L^{-T} u has (w - w_hat)^T V (w - w_hat) = ||u||^2.
        l_inv, w = self._factors()
        return w + u @ l_inv

    def sample_posterior(self, rng: np.random.Generator) -> np.ndarray:
        """One draw ``w ~ N(w_hat, V^{-1})`` (Thompson sampling), ``(d,)``."""
        l_inv, w = self._factors()
        return w + rng.standard_normal(self.dim) @ l_inv

    # -- persistence ------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"L": self.L.copy(), "b": self.b.copy(),
                "counts": np.array([self.updates, self.skipped], dtype=np.int64)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if state["L"].shape != (self.dim, self.dim):
            raise ValueError(f"bandit state has dim {state['L'].shape[0]}, expected {self.dim}.")
        self.L = np.array(state["L"], dtype=np.float64)
        self.b = np.array(state["b"], dtype=np.float64)
        self._cache = None
        self.updates, self.skipped = (int(v) for v in state["counts"])


def ucb_scores(psi: np.ndarray, bandit: LinearBandit, beta: float) -> np.ndarray:
    """Optimistic values of candidates: ``min_h [psi_h^T w_hat + beta ||psi_h||_{V^-1}]``.

    Args:
        psi: ``(E, n, d)`` successor features of n candidates for each F head.
        bandit: The estimator.
        beta: Exploration weight.

    Returns:
        ``(n,)`` scores.
    """
    e, n, d = psi.shape
    flat = psi.reshape(e * n, d).astype(np.float64)
    values = flat @ bandit._factors()[1] + beta * bandit.norm_inv(flat)
    return values.reshape(e, n).min(0)


def _chol_rank1_update(L: np.ndarray, x: np.ndarray) -> None:
    """In place: ``L L^T <- L L^T + x x^T`` for lower-triangular L."""
    n = x.shape[0]
    for k in range(n):
        lkk = L[k, k]
        r = math.sqrt(lkk * lkk + x[k] * x[k])
        c, s = r / lkk, x[k] / lkk
        L[k, k] = r
        if k + 1 < n:
            L[k + 1 :, k] = (L[k + 1 :, k] + s * x[k + 1 :]) / c
            x[k + 1 :] = c * x[k + 1 :] - s * L[k + 1 :, k]


def _solve_lower(L: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.linalg import solve_triangular

    return solve_triangular(L, y, lower=True, check_finite=False)

