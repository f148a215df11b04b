"""The helpers of ``benchmarks/wrapper_throughput.py`` that its committed ratios rest on."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

from benchmark_script import load_benchmark
from bfm_gym.wrappers import _pool
from bfm_gym.wrappers.registration import make_inner_env
from bfm_gym.wrappers.vector import LatentActionVectorEnv
from latent_testenvs import tiny_bfm

wt = load_benchmark("wrapper_throughput")


def test_paired_reads_the_same_rounds_against_every_reference() -> None:
    """``also_ref`` reports the same rounds against a second reference: a variant doing ten
    times the work is slower than the other against either reference."""
    x = np.random.default_rng(0).normal(size=(64, 64))

    def work(k: int):
        def step(_a):
            for _ in range(k):
                x @ x
            return 0, 0, False, False
        return step

    acts = np.zeros((50, 1))
    steppers = {"fast": wt.Stepper(work(1), lambda: None, acts),
                "slow": wt.Stepper(work(10), lambda: None, acts)}  # fmt: skip
    out = wt.paired(steppers, rounds=5, block=10, ref="fast", also_ref=("slow",))
    assert out["speed_vs_fast_wall"]["slow"]["median"] < 1 < out["speed_vs_slow_wall"]["fast"]["median"]
    assert set(out["speed_vs_slow_cpu"]) == {"fast"}


def test_parent_forward_is_the_same_env_with_the_forward_here() -> None:
    """``parent_forward`` switches a ``workers=2`` env back to one forward in this process: the
    results stay bitwise the same; an env whose workers compute no rows is refused."""
    if not _pool.SPIN_HANDOFF:
        pytest.skip("worker-side policy rows need the shared-memory hand-off (x86-64)")
    bfm = tiny_bfm("walker")
    envs = lambda: [make_inner_env("walker", "run", max_inner_steps=6) for _ in range(4)]  # noqa: E731
    split = LatentActionVectorEnv(envs(), bfm, workers=2)
    here = wt.parent_forward(LatentActionVectorEnv(envs(), bfm, workers=2))
    try:
        assert split._pool.computes_actions and not here._pool.computes_actions
        assert data_equivalence(split.reset(seed=2), here.reset(seed=2), exact=True)
        a = np.random.default_rng(1).uniform(-1, 1, (9, 4, bfm.z_dim)).astype(np.float32)
        for row in a:
            assert data_equivalence(split.step(row), here.step(row), exact=True)
        with pytest.raises(SystemExit, match="do not compute policy rows"):
            wt.parent_forward(here)
    finally:
        split.close()
        here.close()
