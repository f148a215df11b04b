"""numpy's OpenBLAS thread count at run time (bfm_gym.utils.blas) and the paths that pin it."""

from __future__ import annotations

import numpy as np
import pytest

from bfm_gym.utils.blas import blas_threads, call_with_one_blas_thread, one_blas_thread, set_blas_threads

pytestmark = pytest.mark.skipif(blas_threads() is None, reason="numpy links no scipy-openblas here")


@pytest.fixture
def two_blas_threads():
    """OpenBLAS at 2 threads for the test (what numpy starts with on a 2-core machine where
    nothing set OPENBLAS_NUM_THREADS before its import), the caller's count restored after."""
    before = blas_threads()
    set_blas_threads(2)
    yield blas_threads()
    set_blas_threads(before)


def test_set_and_restore(two_blas_threads: int) -> None:
    inside = []
    with one_blas_thread():
        inside.append(blas_threads())
    assert inside == [1] and blas_threads() == two_blas_threads
    with one_blas_thread():
        with one_blas_thread():
            inside.append(blas_threads())
        inside.append(blas_threads())  # the inner block does not restore the outer one's count
    assert inside == [1, 1, 1] and blas_threads() == two_blas_threads
    with pytest.raises(RuntimeError, match="boom"), one_blas_thread():
        raise RuntimeError("boom")
    assert blas_threads() == two_blas_threads  # restored after an error too
    assert call_with_one_blas_thread(blas_threads) == 1
    assert blas_threads() == two_blas_threads
    with pytest.raises(ZeroDivisionError):
        call_with_one_blas_thread(lambda: 1 / 0)
    assert blas_threads() == two_blas_threads
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive int"):
            set_blas_threads(bad)  # type: ignore[arg-type]


def test_psi_does_not_depend_on_the_callers_blas_threads(two_blas_threads: int) -> None:
    """OpTI-BFM's 128-candidate successor features are bitwise the same whatever thread count
    the caller left OpenBLAS at (a threaded product of that size rounds differently), and the
    caller's count is left as it was."""
    import bfm_gym
    from bfm_gym.models.fb.fast_policy import FBFeatures

    model = bfm_gym.load("walker")  # 512 wide: products large enough for OpenBLAS to thread
    fast = FBFeatures.build(model)
    assert fast is not None
    rng = np.random.default_rng(0)
    obs = rng.normal(size=model.obs_dim).astype(np.float32)
    z = np.asarray(model.project(rng.normal(size=(128, model.z_dim)).astype(np.float32)))
    states = rng.normal(size=(10, model.obs_dim)).astype(np.float32)
    psi_two, phi_two = fast.psi(obs, z), fast.phi_many(states)
    assert blas_threads() == two_blas_threads
    set_blas_threads(1)
    np.testing.assert_array_equal(fast.psi(obs, z), psi_two)
    np.testing.assert_array_equal(fast.phi_many(states), phi_two)


@pytest.mark.parametrize(("model", "rows", "matrix_products", "pinned"), [
    ("walker", 8, False, True),  # the vector env's default forward: OpenBLAS threads 8 rows
    ("walker", 8, True, True),  # its exact=False forward
    ("point_mass_maze", 8, True, True),
    ("walker", 1, False, False),  # one row of 513 x 512 is not threaded: no switch, no cost
    ("point_mass_maze", 1, False, False),
])
def test_policy_runner_blas_threads(two_blas_threads: int, monkeypatch: pytest.MonkeyPatch, model: str,
                                    rows: int, matrix_products: bool, pinned: bool) -> None:
    """A policy forward whose products OpenBLAS would thread (several rows, or a layer of 2^19
    weights) runs them on one thread and gives the caller's count back; one row of a smaller
    actor leaves the count alone."""
    import bfm_gym
    from bfm_gym.models.fb.fast_policy import PolicyRunner

    runner = PolicyRunner(bfm_gym.load(model).model, rows)
    assert runner.path == "numpy"
    if matrix_products:
        assert runner.use_matrix_products()
    seen = []
    original = np.matmul

    def spy(*args, **kwargs):
        seen.append(blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(np, "matmul", spy)
    runner()
    monkeypatch.undo()
    assert len(seen) >= 4 and set(seen) == ({1} if pinned else {two_blas_threads})
    assert blas_threads() == two_blas_threads


def test_compare_workers_use_one_blas_thread(two_blas_threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool worker's initializer pins one OpenBLAS thread at run time (the environment
    variable comes too late once numpy is imported)."""
    import torch

    from bfm_gym.experiments.compare.executors import _init_worker

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the initializer sets it; restored after
    torch_threads = torch.get_num_threads()
    try:
        _init_worker({})
        assert blas_threads() == 1
    finally:
        torch.set_num_threads(torch_threads)


@pytest.mark.parametrize("script", ["adaptation", "profile_hot_paths"])
def test_one_thread_benchmarks_set_it_and_record_it(two_blas_threads: int, script: str) -> None:
    """The benchmarks that time one thread set OpenBLAS's count at run time (their own imports
    load numpy first, so an environment variable would come too late) and the machine record
    of every benchmark JSON says what it was."""
    from benchmark_script import load_benchmark

    from bfm_gym.utils.machine import machine_summary

    load_benchmark(script)
    assert blas_threads() == 1
    assert machine_summary()["blas_threads"] == 1
    report = load_benchmark("_report")
    assert report.machine()["blas_threads"] == 1
