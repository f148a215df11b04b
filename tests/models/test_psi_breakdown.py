"""``benchmarks/psi_breakdown.py`` times a copy of the numpy psi op by op: the copy must stay
the same computation as :class:`bfm_gym.models.fb.fast_policy._NumpyPsi`'s ``run``."""

from __future__ import annotations

import json

import numpy as np
import torch

import bfm_gym
from bfm_gym.models.fb.fast_policy import FBFeatures
from bfm_gym.utils.blas import blas_threads, set_blas_threads


def test_instrumented_psi_is_the_real_psi_and_the_report_adds_up(tmp_path) -> None:
    from benchmark_script import load_benchmark

    bench = load_benchmark("psi_breakdown")
    bfm = bfm_gym.load("point_mass_maze")
    p = FBFeatures.build(bfm)._np_psi
    rng = np.random.default_rng(3)
    obs = rng.standard_normal(bfm.obs_dim).astype(np.float32)
    z = np.asarray(bfm.project(rng.standard_normal((16, bfm.z_dim)).astype(np.float32)))
    clock = bench._Clock()
    assert np.array_equal(bench.instrumented_run(p, obs, z, clock), p.run(obs, z))
    # every matrix product of the forward is counted: actor z input, embeddings, mlp; F's
    expected = 2 * 16 * (bfm.z_dim * p.a_wz.shape[1]
                         + sum(w.shape[1] * w.shape[2] for w, _ in p.a_embed)
                         + p.a_mlp[0][0].shape[0] // 2 * p.a_mlp[0][0].shape[1]
                         + sum(w.shape[0] * w.shape[1] for w, _ in p.a_mlp[1:])
                         + (p.f_wa.shape[0] + p.f_wz.shape[0]) * p.f_wa.shape[1]
                         + sum(w.shape[0] * w.shape[1] * w.shape[2] for w, _ in p.f_embed)
                         + sum(w.shape[0] * w.shape[1] * w.shape[2] for w, _ in p.f_mlp))  # fmt: skip
    assert sum(clock.flops.values()) == expected

    before, torch_threads = blas_threads(), torch.get_num_threads()
    try:
        out = tmp_path / "psi.json"
        report = bench.main(["--model", "point_mass_maze", "--candidates", "16", "--repeats", "3",
                             "--out", str(out)])  # fmt: skip
    finally:
        if before is not None:
            set_blas_threads(before)
        torch.set_num_threads(torch_threads)
    assert json.loads(out.read_text()) == report
    assert report["machine"]["blas_threads"] == 1
    shares = [row["share"] for row in report["stages"].values()]
    assert abs(sum(shares) - 1.0) < 0.01
    assert report["matrix_products"]["gflop"] == round(expected / 1e9, 4)
    assert report["psi_ms"] > 0 and report["numpy_float32_tanh_ns_per_value"] > 0
