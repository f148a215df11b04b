"""Where OpTI-BFM's candidate features go: each stage of the numpy psi of n candidate latents.

OpTI-BFM's UCB selection scores 128 candidate latents at the current state through
``psi_k(s, pi(s, z_i), z_i)`` (the actor's action, then both F heads). The py-spy profile of
``profile_hot_paths.py`` says psi is most of a decision; this script says which of psi's
operations take the time, so that the floor of a selection can be read off:

* every stage of :class:`bfm_gym.models.fb.fast_policy._NumpyPsi`'s ``run``, timed op by op
  (an instrumented copy of ``run``; the script first checks that it returns bitwise what
  ``run`` returns, so a change to ``run`` that this copy misses stops the script);
* the matrix products' floating-point work, and the rate they reach, against this core's
  fp32 peak measured on a square 512 x 512 x 512 product;
* numpy's float32 tanh per value, the other large item.

One BLAS thread and one torch thread, as OpTI-BFM runs psi.

    python benchmarks/psi_breakdown.py [--model walker] [--candidates 128] [--repeats 100]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _cpu import machine_info
from _report import command, write_report

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

import bfm_gym
from bfm_gym.models.fb.fast_policy import FBFeatures, _vecdot
from bfm_gym.utils.blas import set_blas_threads


class _Clock:
    """Adds the seconds since the last :meth:`tick` to a stage's total."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.flops: dict[str, float] = {}
        self.t = 0.0

    def start(self) -> None:
        self.t = time.perf_counter()

    def tick(self, stage: str, flops: float = 0.0) -> None:
        now = time.perf_counter()
        self.total[stage] = self.total.get(stage, 0.0) + now - self.t
        self.flops[stage] = self.flops.get(stage, 0.0) + flops
        self.t = now


def _mm(a: np.ndarray, w: np.ndarray) -> float:
    """Floating-point operations of ``a @ w`` (2 per multiply-add)."""
    rows = int(np.prod(a.shape[:-1]))
    return 2.0 * rows * a.shape[-1] * w.shape[-1]


def _ln_tanh(
    clock: _Clock, tag: str, y: np.ndarray, lnw: np.ndarray, lnb: np.ndarray, eps: np.float32
) -> None:
    """``_NumpyPsi._ln_tanh``, op by op."""
    var = _vecdot(y)
    var += eps
    np.sqrt(var, out=var)
    y *= lnw / var[..., None]
    y += lnb
    clock.tick(f"{tag} LayerNorm")
    np.tanh(y, out=y)
    clock.tick(f"{tag} tanh")


def instrumented_run(p, obs: np.ndarray, z: np.ndarray, clock: _Clock) -> np.ndarray:
    """``_NumpyPsi.run`` with a clock tick after each stage (same ops, same order)."""
    clock.start()
    e, h, fh = p.e, p.a_h, p.f_h
    n = z.shape[0]
    p.s1[0, :-1] = obs
    s_all = p.s1 @ p.a_ws
    ys = s_all[:, :h].copy()
    clock.tick("actor s-branch (1 row)")
    _ln_tanh(clock, "actor s-branch (1 row)", ys, p.a_lnw[0], p.a_lnb[0], p.a_eps)
    yz = z @ p.a_wz
    yz += s_all[:, h:]
    clock.tick("actor z input product", _mm(z, p.a_wz))
    _ln_tanh(clock, "actor z-branch", yz, p.a_lnw[1], p.a_lnb[1], p.a_eps)
    for w, b in p.a_embed:
        ys = ys @ w[0]
        ys += b[0]
        np.maximum(ys, 0.0, out=ys)
        clock.tick("actor s-branch (1 row)")
        flops = _mm(yz, w[1])
        yz = yz @ w[1]
        clock.tick("actor embedding products", flops)
        yz += b[1]
        np.maximum(yz, 0.0, out=yz)
        clock.tick("bias and ReLU passes")
    (w0, b0), rest = p.a_mlp[0], p.a_mlp[1:]
    half = ys.shape[1]
    y = yz @ w0[half:]
    clock.tick("actor mlp products", _mm(yz, w0[half:]))
    y += ys @ w0[:half] + b0
    clock.tick("bias and ReLU passes")
    for w, b in rest:
        np.maximum(y, 0.0, out=y)
        flops = _mm(y, w)
        y = y @ w
        y += b
        clock.tick("actor mlp products", flops)
    a = np.tanh(y, out=y)
    clock.tick("actor output tanh")
    c = p.s1 @ p.f_ws
    eh = e * fh
    g = np.empty((n, 2 * eh), np.float32)
    np.matmul(a, p.f_wa, out=g[:, :eh])
    np.matmul(z, p.f_wz, out=g[:, eh:])
    clock.tick("F input products", _mm(a, p.f_wa) + _mm(z, p.f_wz))
    g += c
    g3 = g.reshape(n, 2 * e, fh)
    clock.tick("bias and ReLU passes")
    _ln_tanh(clock, "F embeddings", g3, p.f_lnw, p.f_lnb, p.f_eps)
    x = g3.transpose(1, 0, 2)
    for w, b in p.f_embed:
        flops = _mm(x, w)
        x = np.matmul(x, w)
        clock.tick("F embedding products", flops)
        x += b
        np.maximum(x, 0.0, out=x)
        clock.tick("bias and ReLU passes")
    x = x.reshape(2, e, n, -1).transpose(1, 2, 0, 3).reshape(e, n, -1)
    clock.tick("F reshape to heads")
    last = len(p.f_mlp) - 1
    for i, (w, b) in enumerate(p.f_mlp):
        flops = _mm(x, w)
        x = np.matmul(x, w)
        clock.tick("F mlp products", flops)
        x += b
        if i != last:
            np.maximum(x, 0.0, out=x)
        clock.tick("bias and ReLU passes")
    return x


def _best_seconds(fn, number: int, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="walker", help="a shipped model name or a model folder")
    parser.add_argument("--candidates", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=100, help="timed psi calls")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/psi_breakdown.json"))
    args = parser.parse_args(argv)
    set_blas_threads(1)
    torch.set_num_threads(1)
    machine = machine_info(torch_threads=1)
    bfm = bfm_gym.load(args.model)
    features = FBFeatures.build(bfm)
    if features is None:
        raise SystemExit(
            f"{args.model}: no fast numpy psi for this model (not an FB model on CPU)."
        )
    p = features._np_psi
    rng = np.random.default_rng(0)
    obs = rng.standard_normal(bfm.obs_dim).astype(np.float32)
    z = rng.standard_normal((args.candidates, bfm.z_dim)).astype(np.float32)
    z *= np.float32(np.sqrt(bfm.z_dim)) / np.linalg.norm(z, axis=1, keepdims=True)
    if not np.array_equal(instrumented_run(p, obs, z, _Clock()), p.run(obs, z)):
        raise SystemExit("instrumented_run no longer matches _NumpyPsi.run: update this script.")
    for _ in range(10):
        p.run(obs, z)
    whole = _best_seconds(lambda: p.run(obs, z), max(1, args.repeats // 5))
    clock = _Clock()
    for _ in range(args.repeats):
        instrumented_run(p, obs, z, clock)
    staged = sum(clock.total.values()) / args.repeats
    stages = sorted(clock.total, key=lambda k: -clock.total[k])
    table = {
        k: {"ms": round(clock.total[k] / args.repeats * 1e3, 3),
            "share": round(clock.total[k] / args.repeats / staged, 3),
            **({"gflop": round(clock.flops[k] / args.repeats / 1e9, 4),
                "gflop_per_s": round(clock.flops[k] / clock.total[k] / 1e9, 1)}
               if clock.flops[k] else {})}
        for k in stages
    }  # fmt: skip
    products = [k for k in stages if clock.flops[k]]
    product_s = sum(clock.total[k] for k in products) / args.repeats
    product_flops = sum(clock.flops[k] for k in products) / args.repeats
    sq = rng.standard_normal((512, 512)).astype(np.float32)
    out = np.empty_like(sq)
    peak = 2 * 512**3 / _best_seconds(lambda: np.matmul(sq, sq, out=out), 20)
    t = rng.standard_normal(1 << 18).astype(np.float32)
    tanh_ns = _best_seconds(lambda: np.tanh(t, out=t), 20) / t.size * 1e9
    report = {
        "benchmark": "psi_breakdown",
        "command": command(),
        "machine": machine,
        "model": args.model,
        "candidates": args.candidates,
        "psi_ms": round(whole * 1e3, 3),
        "psi_ms_instrumented": round(staged * 1e3, 3),
        "stages": table,
        "matrix_products": {
            "gflop": round(product_flops / 1e9, 4),
            "ms": round(product_s * 1e3, 3),
            "gflop_per_s": round(product_flops / product_s / 1e9, 1),
            "ms_at_peak": round(product_flops / peak * 1e3, 3),
        },
        "sgemm_512_cubed_gflop_per_s": round(peak / 1e9, 1),
        "numpy_float32_tanh_ns_per_value": round(tanh_ns, 2),
    }
    for k in stages:
        row = table[k]
        rate = f"  {row['gflop_per_s']:6.1f} GFLOP/s" if "gflop_per_s" in row else ""
        print(f"{k:32s} {row['ms']:7.3f} ms  {row['share'] * 100:5.1f} %{rate}")
    print(
        f"psi of {args.candidates} candidates: {whole * 1e3:.2f} ms; products "
        f"{product_s * 1e3:.2f} ms ({product_flops / 1e9:.3f} GFLOP, "
        f"{product_flops / peak * 1e3:.2f} ms at the 512^3 sgemm rate of {peak / 1e9:.0f} GFLOP/s)"
    )
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
