"""``bfm_gym.utils.machine``: what a record says of the machine that ran it. The OpenBLAS kernel
family is read from numpy's own library and follows ``OPENBLAS_CORETYPE``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bfm_gym.utils.machine import blas_core, cpu_kind, machine_summary, numerics_kind


def test_numerics_kind_names_the_cpu_kind_and_the_blas_kernels() -> None:
    core = blas_core()
    assert cpu_kind() in ("avx512_bf16", "avx512", "avx2", "other")
    if core is None:
        assert numerics_kind() == cpu_kind()
    else:
        assert numerics_kind() == f"{cpu_kind()}, OpenBLAS {core}"
    assert machine_summary()["blas_core"] == core


def test_blas_core_follows_openblas_coretype() -> None:
    if blas_core() is None:
        pytest.skip("numpy here does not link a scipy-openblas that reports its kernels")
    code = "from bfm_gym.utils.machine import blas_core; print(blas_core())"
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Haswell"
