"""OpTI-BFM side by side with its official implementation, on the same inputs.

    python benchmarks/opti_official_harness.py --official /path/to/opti-bfm \
        --jax-path /tmp/opti_jax --out benchmarks/results/opti_official_harness.json \
        --fixture tests/adapters/data/opti_official_stream.npz

The authors' code (GitHub ThomasRupf/opti-bfm; a git checkout or a bare mirror, read
with ``git show``) is not part of bfm_gym and is never committed here. What runs of it:

- ``utils/blr.py``, its estimator (``BLR``: regularised least squares in natural
  parameters with an upper Cholesky factor ``R`` of the precision, rank-1 Cholesky
  updates, ``ucb``, ``transform``), loaded as is from the checkout and run under JAX
  (CPU). JAX is not a bfm_gym dependency: ``--jax-path`` names a folder made with
  ``pip install --target DIR "jax[cpu]"``.
- ``agents/optimistic.py`` needs flax, hydra and their logging stack to import, so its
  agent loop (``LinUCB.optimize_ucb`` / ``update_C`` and ``TS.update``, about twenty
  lines) is **transcribed** below in :func:`official_step` / :func:`official_select` as
  a check of our reading, not as an implementation to use. Every numerical operation in
  it is a call of the official ``BLR``.

Both sides get the same inputs: the shipped walker model's ``phi`` of a stream of
next-observations and the env's rewards for one task (the BFM acting with random
latents held ``--hold`` steps, so the states are the model's own), the same draws
from the unit ball for the candidates (the official code draws them with
``jax.random.ball``; here one numpy stream feeds both), the same tie-breaking noise
and the same standard normals for Thompson sampling. ``psi`` of the candidates comes
from the shipped model (the official rule's ``F(norm_z(z), s, mode action)`` is the
same map). Compared step by step:

- the least-squares estimate and its design matrix (lambda 1, no gate, no decay), and
  again with a ``kappa`` gate and forgetting (which updates pass the gate);
- at every ``--select-every`` steps: the 128 candidates, their UCB scores (min over the
  two F heads) and the chosen index, for the official geometry and, as a measure of
  the difference, our exact-ellipsoid geometry on the same draws;
- Thompson sampling (sigma 0.01): the posterior mean and the sample;
- the TS warm start (official: labels of the warm start at sigma 1);
- ``phi``'s ridge (ours solves ``Cov + 1e-6 tr(Cov)/d I``; official inverts Cov).

Each comparison runs with the official code in float64 (``jax_enable_x64``) and in
float32 (JAX's default, what the paper's runs used). ``--fixture`` also writes a short
stream (inputs and the official outputs, float64) for tests/adapters/test_opti_official.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from pathlib import Path

from _report import command, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np


def load_official_blr(official: str, jax_path: str | None) -> tuple[types.ModuleType, str]:
    """Imports opti-bfm's ``utils/blr.py`` from a checkout or bare mirror; returns (module, commit)."""
    if jax_path:
        sys.path.append(jax_path)  # appended: bfm_gym's own numpy/scipy stay first
    try:
        import jax  # noqa: F401
    except ImportError as err:
        raise SystemExit("JAX is needed to run the official BLR: pip install --target DIR 'jax[cpu]' "
                         "and pass --jax-path DIR.") from err
    root = Path(official)
    git = ["git", f"--git-dir={root / '.git'}"] if (root / ".git").exists() else ["git", f"--git-dir={root}"]
    try:
        commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                                text=True).stdout.strip()
        source = subprocess.run([*git, "show", "HEAD:utils/blr.py"], check=True, capture_output=True,
                                text=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        raise SystemExit(f"--official {official}: not a git checkout or mirror of opti-bfm "
                         f"holding utils/blr.py ({err}).") from err
    module = types.ModuleType("opti_bfm_blr")
    exec(compile(source, f"opti-bfm@{commit[:7]}:utils/blr.py", "exec"), module.__dict__)
    return module, commit


# -- transcription of opti-bfm agents/optimistic.py (for checking only) ----------------------


class Official:
    """The official agent's state update and selection, written out from its source.

    ``LinUCB.update_C``: the rank-1 update (with ``decay``) is kept only if the
    information gain ``||phi||^2`` under the *old* covariance is ``>= e^kappa - 1``.
    ``LinUCB.optimize_ucb``: candidates ``BLR.transform(eps * 2 beta)`` for unit-ball
    draws eps, scores ``BLR.ucb(psi, beta)`` reduced by ``min`` over the F heads,
    ``argmax(scores + 1e-8 * uniform)``. ``TS.update``: the same update with
    ``sigma``, gate on ``||phi / sigma||^2``, sample ``BLR.transform(normal)``.
    """

    def __init__(self, blr: types.ModuleType, dim: int, *, lam: float = 1.0, ts_sigma: float | None = None):
        import jax
        import jax.numpy as jnp

        self.jnp = jnp
        if ts_sigma is None:
            self.C = blr.BLR.create_LSQ(dim, lam)
        else:
            self.C = blr.BLR.create(jnp.zeros((dim,)), jnp.diag(jnp.ones((dim,))))
        self.sigma = 1.0 if ts_sigma is None else ts_sigma
        self._upd = jax.jit(lambda C, x, y, decay: C.rank1_update(x, y, sigma=self.sigma, decay=decay))
        self._gain = jax.jit(lambda C, x: jnp.square(C.cov_norm(x / self.sigma)))

    def step(self, phi: np.ndarray, reward: float, *, kappa: float = 0.0, decay: float = 1.0) -> bool:
        x = self.jnp.asarray(phi)
        h = float(self._gain(self.C, x))
        if h >= np.expm1(kappa):
            self.C = self._upd(self.C, x, self.jnp.asarray(reward), decay)
            return True
        return False

    def warm_start(self, phi: np.ndarray, rewards: np.ndarray) -> None:
        self.C = self.C.update(X=self.jnp.asarray(phi), y=self.jnp.asarray(rewards))  # no sigma: as official

    def candidates(self, u: np.ndarray, beta: float) -> np.ndarray:
        return np.asarray(self.C.transform(self.jnp.asarray(u) * (2.0 * beta)), dtype=np.float64)

    def scores(self, psi: np.ndarray, beta: float) -> np.ndarray:
        sf = self.jnp.asarray(np.transpose(psi, (1, 0, 2)), dtype=self.C.R.dtype)  # (n, heads, d)
        return np.asarray(self.C.ucb(sf, beta).min(1), dtype=np.float64)

    def sample(self, eps: np.ndarray) -> np.ndarray:
        return np.asarray(self.C.transform(self.jnp.asarray(eps)), dtype=np.float64)

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self.C.mean, dtype=np.float64)

    @property
    def prec(self) -> np.ndarray:
        return np.asarray(self.C.prec, dtype=np.float64)


# -- the stream --------------------------------------------------------------------------------


def make_stream(bfm, task: str, steps: int, hold: int, seed: int) -> dict[str, np.ndarray]:
    """``steps`` transitions of the BFM acting with sphere latents held ``hold`` steps."""
    from bfm_gym.envs.dmc_env import DMCEnv

    env = DMCEnv(bfm.metadata.domain, task)
    zs = np.asarray(bfm.sample_z(steps // hold + 1, seed=seed), dtype=np.float32)
    obs, _ = env.reset(seed=seed)
    rows, next_rows, rewards = [], [], []
    for t in range(steps):
        nxt, r, terminated, truncated, _ = env.step(bfm.act(obs, zs[t // hold]))
        rows.append(obs)
        next_rows.append(nxt)
        rewards.append(r)
        obs = env.reset()[0] if (terminated or truncated) else nxt
    env.close()
    obs_a = np.asarray(rows, dtype=np.float32)
    next_a = np.asarray(next_rows, dtype=np.float32)
    return {"obs": obs_a, "next_obs": next_a, "reward": np.asarray(rewards, dtype=np.float64),
            "phi": np.asarray(bfm.phi(next_a), dtype=np.float64)}


def psi_of(bfm, obs: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """``(E, n, d)`` successor features of candidate latents at one state (policy mean)."""
    cands = cands.astype(np.float32)
    cands[np.linalg.norm(cands, axis=1) < 1e-8] = 1.0
    z = np.asarray(bfm.project(cands), dtype=np.float32)
    return np.asarray(bfm.psi(np.repeat(obs[None], len(z), axis=0), z), dtype=np.float32)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(float(np.linalg.norm(b)), 1e-300))


def geometry_stats(bandit, offsets: np.ndarray, radius: float) -> dict[str, float]:
    """V-norm of offsets over the radius, Euclidean length, and the share of their squared
    length on the half of V's eigenvectors with the smallest eigenvalues (least data)."""
    v = bandit.V
    evals, evecs = np.linalg.eigh(v)
    low = evecs[:, : len(evals) // 2]
    vnorm = np.sqrt(np.einsum("nd,de,ne->n", offsets, v, offsets))
    share = ((offsets @ low) ** 2).sum(1) / np.maximum((offsets ** 2).sum(1), 1e-300)
    return {"v_norm_over_radius_median": float(np.median(vnorm / radius)),
            "v_norm_over_radius_max": float(vnorm.max() / radius),
            "euclid_norm_median": float(np.median(np.linalg.norm(offsets, axis=1))),
            "share_in_low_information_half": float(share.mean())}


# -- one side-by-side run ---------------------------------------------------------------------


def compare_run(blr, bfm, stream: dict, *, beta: float, n: int, select_every: int, seed: int,
                kappa: float, decay: float, sigma: float, warm: int) -> dict:
    """Feeds one stream to both sides; returns agreement metrics and the official outputs."""
    from bfm_gym.adapters.bandit import LinearBandit, ucb_scores, uniform_ball

    phi, reward, obs = stream["phi"], stream["reward"], stream["obs"]
    steps, d = phi.shape
    rng = np.random.default_rng(seed)
    ours, theirs = LinearBandit(d, lam=1.0), Official(blr, d, lam=1.0)
    ours_g = LinearBandit(d, lam=1.0, kappa=kappa, decay=decay)
    theirs_g = Official(blr, d, lam=1.0)
    ours_ts = LinearBandit(d, lam=1.0, noise_std=sigma)
    theirs_ts = Official(blr, d, ts_sigma=sigma)
    sel_steps = list(range(0, steps + 1, select_every))
    rec: dict[str, list] = {k: [] for k in (
        "sel_steps", "u", "tie", "eps", "psi", "mean", "cands", "scores", "chosen", "ts_mean",
        "ts_sample")}
    err = {"mean": 0.0, "prec": 0.0, "cands": 0.0, "scores_same_psi": 0.0, "scores_own_psi": 0.0,
           "ts_mean": 0.0, "ts_sample": 0.0, "gated_mean": 0.0}
    chosen_same = chosen_same_own = 0
    geo: dict[str, list] = {"official": [], "exact": []}
    mask_ours, mask_theirs = [], []
    exact_vs_official_choice_differs = 0
    for t in range(steps + 1):
        if t in sel_steps:
            u = uniform_ball(n, d, 1.0, rng)
            tie = rng.uniform(size=n)
            eps = rng.standard_normal(d)
            c_theirs = theirs.candidates(u, beta)
            c_ours = ours.w_hat() + ours.offsets(2 * beta * u, "official")
            o = obs[min(t, steps - 1)] if t < steps else stream["next_obs"][-1]
            psi = psi_of(bfm, o, c_theirs)
            s_theirs = theirs.scores(psi, beta)
            s_ours = ucb_scores(psi, ours, beta)
            s_ours_own = ucb_scores(psi_of(bfm, o, c_ours), ours, beta)
            k_theirs = int(np.argmax(s_theirs + 1e-8 * tie))
            chosen_same += int(np.argmax(s_ours + 1e-8 * tie)) == k_theirs
            chosen_same_own += int(np.argmax(s_ours_own + 1e-8 * tie)) == k_theirs
            scale = float(np.abs(s_theirs).max()) or 1.0
            err["cands"] = max(err["cands"], rel(c_ours, c_theirs))
            err["scores_same_psi"] = max(err["scores_same_psi"], float(np.abs(s_ours - s_theirs).max()) / scale)
            err["scores_own_psi"] = max(err["scores_own_psi"], float(np.abs(s_ours_own - s_theirs).max()) / scale)
            ts_s = theirs_ts.sample(eps)
            ts_o = ours_ts.w_hat() + ours_ts.offsets(eps[None], "official")[0]
            err["ts_sample"] = max(err["ts_sample"], rel(ts_o, ts_s))
            if t > 0:
                off_e = ours.offsets(2 * beta * u, "exact")
                geo["official"].append(geometry_stats(ours, c_ours - ours.w_hat(), 2 * beta))
                geo["exact"].append(geometry_stats(ours, off_e, 2 * beta))
                c_exact = ours.w_hat() + off_e
                k_exact = int(np.argmax(ucb_scores(psi_of(bfm, o, c_exact), ours, beta) + 1e-8 * tie))
                exact_vs_official_choice_differs += rel(c_exact[k_exact], c_theirs[k_theirs]) > 1e-6
            for k, v in (("sel_steps", t), ("u", u), ("tie", tie), ("eps", eps), ("psi", psi),
                         ("mean", theirs.mean), ("cands", c_theirs), ("scores", s_theirs),
                         ("chosen", k_theirs), ("ts_mean", theirs_ts.mean), ("ts_sample", ts_s)):
                rec[k].append(v)
        if t == steps:
            break
        ours.update(phi[t], reward[t])
        theirs.step(phi[t], reward[t])
        mask_ours.append(ours_g.update(phi[t], reward[t]) == 1)
        mask_theirs.append(theirs_g.step(phi[t], reward[t], kappa=kappa, decay=decay))
        ours_ts.update(phi[t], reward[t])
        theirs_ts.step(phi[t], reward[t])
        w_t = theirs.mean
        err["mean"] = max(err["mean"], rel(ours.w_hat(), w_t))
        err["ts_mean"] = max(err["ts_mean"], rel(ours_ts.w_hat(), theirs_ts.mean))
        err["gated_mean"] = max(err["gated_mean"], rel(ours_g.w_hat(), theirs_g.mean))
        if (t + 1) % select_every == 0 or t == steps - 1:
            err["prec"] = max(err["prec"], rel(ours.V, theirs.prec))
    k_sel = len(sel_steps)
    # TS warm start: the official code adds warm labels at sigma 1, whatever the online sigma
    warm_theirs = Official(blr, d, ts_sigma=sigma)
    warm_theirs.warm_start(phi[:warm], reward[:warm])
    warm_ours = LinearBandit(d, lam=1.0, noise_std=sigma)
    warm_ours.update(phi[:warm], reward[:warm], noise_std=1.0)
    warm_scaled = LinearBandit(d, lam=1.0, noise_std=sigma)
    warm_scaled.update(phi[:warm], reward[:warm])
    summary = {
        "steps": steps, "dim": d, "selections": k_sel, "candidates": n, "beta": beta,
        "max_rel_err": {k: float(f"{v:.3g}") for k, v in err.items()},
        "chosen_agree_same_psi": f"{chosen_same}/{k_sel}",
        "chosen_agree_own_candidates": f"{chosen_same_own}/{k_sel}",
        "gate": {"kappa": kappa, "decay": decay, "accepted_ours": int(np.sum(mask_ours)),
                 "accepted_official": int(np.sum(mask_theirs)),
                 "decisions_agree": int(np.sum(np.array(mask_ours) == np.array(mask_theirs)))},
        "ts_warm_start": {"labels": warm, "rel_err_mean_sigma1": float(f"{rel(warm_ours.w_hat(), warm_theirs.mean):.3g}"),
                          "rel_err_mean_if_scaled_by_sigma": float(f"{rel(warm_scaled.w_hat(), warm_theirs.mean):.3g}")},
        "geometry_on_same_draws": {g: {k: round(float(np.median([s[k] for s in v])), 4) for k in v[0]}
                                   for g, v in geo.items() if v},
        "exact_geometry_chooses_another_latent": f"{exact_vs_official_choice_differs}/{k_sel - 1}",
    }
    fixture = {k: np.asarray(v) for k, v in rec.items()}
    fixture.update({"phi": phi, "reward": reward, "prec_final": theirs.prec,
                    "gated_mask": np.asarray(mask_theirs), "gated_mean_final": theirs_g.mean,
                    "warm_ts_mean": warm_theirs.mean,
                    "params": np.array([beta, kappa, decay, sigma, warm, 1.0])})
    return {"summary": summary, "fixture": fixture}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", default=os.environ.get("OPTI_BFM_SRC", ""),
                        help="opti-bfm checkout or bare git mirror (or $OPTI_BFM_SRC).")
    parser.add_argument("--jax-path", default=None, help="Extra sys.path entry holding jax.")
    parser.add_argument("--model", default="walker")
    parser.add_argument("--task", default="walk")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--hold", type=int, default=50, help="Steps each random latent is held.")
    parser.add_argument("--select-every", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=128)
    parser.add_argument("--beta", type=float, default=0.1, help="The paper's main-run beta.")
    parser.add_argument("--kappa", type=float, default=0.05, help="Gate of the gated comparison.")
    parser.add_argument("--decay", type=float, default=0.995, help="Forgetting of the gated comparison.")
    parser.add_argument("--sigma", type=float, default=0.01, help="TS observation noise.")
    parser.add_argument("--warm", type=int, default=200, help="Warm-start labels (TS check).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/opti_official_harness.json")
    parser.add_argument("--fixture", default=None, help="Also write a short-stream fixture (.npz).")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not args.official:
        raise SystemExit("--official PATH: an opti-bfm checkout (github.com/ThomasRupf/opti-bfm) is needed.")
    import torch

    torch.set_num_threads(args.threads)
    blr, commit = load_official_blr(args.official, args.jax_path)
    import jax

    import bfm_gym

    bfm = bfm_gym.load(args.model)
    start = time.perf_counter()
    stream = make_stream(bfm, args.task, args.steps, args.hold, args.seed)
    kw = {"beta": args.beta, "n": args.candidates, "select_every": args.select_every, "seed": args.seed,
          "kappa": args.kappa, "decay": args.decay, "sigma": args.sigma, "warm": args.warm}
    results = {}
    for precision in ("float64", "float32"):
        jax.config.update("jax_enable_x64", precision == "float64")
        results[precision] = compare_run(blr, bfm, stream, **kw)["summary"]
        print(precision, results[precision], flush=True)
    phi0 = bfm._model.phi(torch.as_tensor(stream["next_obs"]), ridge=0.0).double().numpy()
    if args.fixture:
        jax.config.update("jax_enable_x64", True)
        short = {k: v[:120] for k, v in stream.items()}
        fx = compare_run(blr, bfm, short, **{**kw, "n": 32, "select_every": 40, "warm": 40})["fixture"]
        fx["psi"] = fx["psi"].astype(np.float32)
        Path(args.fixture).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.fixture, **fx, official_commit=np.array(commit))
        print(f"wrote {args.fixture}")
    write_report(args.out, {
        "benchmark": "opti_official_harness", "command": command(),
        "machine": machine(torch_threads=args.threads), "official_commit": commit,
        "official_code_run": "utils/blr.py as is (JAX " + jax.__version__ + ", CPU); agent loop of "
                             "agents/optimistic.py transcribed in the harness",
        "model": args.model, "task": args.task, "stream": {"steps": args.steps, "hold": args.hold,
                                                         "seed": args.seed},
        "config": kw, "results": results,
        "phi_ridge_1e-6_vs_none_max_rel_err": float(f"{rel(stream['phi'], phi0):.3g}"),
        "seconds": round(time.perf_counter() - start, 1)})


if __name__ == "__main__":
    main()
