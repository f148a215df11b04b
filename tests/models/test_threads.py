"""The thread governor behind ``threads="auto"``: it keeps the faster thread count."""

from __future__ import annotations

import torch

from bfm_gym.models.threads import ThreadGovernor


def _drive(gov: ThreadGovernor, seconds_per_update: dict[int, float], updates: int) -> dict[int, int]:
    """Runs ``updates`` updates whose time depends on the thread count; updates per count."""
    done = {1: 0, 2: 0}
    for _ in range(updates):
        done[gov.threads] += 1
        gov.record(seconds_per_update[gov.threads])
    return done


def test_a_busy_machine_moves_two_threads_to_one_and_an_idle_one_back() -> None:
    applied: list[int] = []
    free = {"cores": 2}
    gov = ThreadGovernor(2, threads=2, period_s=1.0, hold_periods=3, set_threads=applied.append,
                         free_cores=lambda: free["cores"])
    done = _drive(gov, {2: 0.02, 1: 0.03}, 600)  # idle: two threads are faster, probes of 1 lose
    assert done[2] > 0.8 * 600 and set(applied) == {1, 2}
    applied.clear()
    _drive(gov, {2: 0.1, 1: 0.05}, 60)  # another job starts: the rate drops, a probe runs at once
    assert gov.threads == 1 and applied[-1] == 1
    free["cores"] = 1  # still busy: no probe of 2 threads
    n = len(applied)
    _drive(gov, {2: 0.1, 1: 0.05}, 400)
    assert gov.threads == 1 and len(applied) == n
    free["cores"] = 2  # the other job ended: a probe of 2 threads wins
    done = _drive(gov, {2: 0.02, 1: 0.05}, 600)
    assert done[2] > 0.75 * 600


def test_one_core_or_a_fixed_count_never_changes_threads() -> None:
    applied: list[int] = []
    gov = ThreadGovernor(1, threads=1, period_s=0.1, set_threads=applied.append)
    _drive(gov, {1: 0.05}, 100)
    assert applied == [] and gov.changes == 0


def test_trainer_governs_only_with_auto_threads() -> None:
    from bfm_gym.models.fb import FBConfig, FBTrainer

    before = torch.get_num_threads()
    try:
        cfg = FBConfig.preset("point_mass_maze", "tiny")
        assert FBTrainer(cfg, 4, 2, device="cpu", threads="auto")._governor is not None
        assert FBTrainer(cfg, 4, 2, device="cpu", threads=1)._governor is None
        assert FBTrainer(cfg, 4, 2, device="cpu", threads=None)._governor is None
    finally:
        torch.set_num_threads(before)
