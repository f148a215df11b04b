"""Keeping torch's CPU thread count right while a long training runs (``threads="auto"``).

``threads="auto"`` starts with the cores the load average leaves free. That choice goes stale:
when another job starts later, torch's OpenMP threads spin while they wait for a sibling that
the other job keeps off its core, and a two-thread update slows far below a one-thread one. On
the 2-core development VM, a walker ``cpu``-size FB update ran at 10 updates/s with two threads
next to one busy process, against 19 with one thread (37 and 30 on the idle machine); a maze
run started with two threads at a quiet moment ran at 0.5 updates/s for hours next to two other
jobs, where one thread gave 20 (``benchmarks/fb_update_speed.py``; README, Measurements).

:class:`ThreadGovernor` measures what the thread count actually buys. It times every update;
every ``period_s`` seconds of update time it has a rate for the current count. Every
``hold_periods`` periods, or at once when the rate falls below ``drop`` times the previous
period's, it tries the other choice (one thread when it runs several, all usable cores when it
runs one and the load average says some are free) for one period and keeps whichever was
faster by ``margin``. A probe that loses costs one period at the slower rate.

The thread count changes the order of floating-point sums, so a run whose count changes is not
bit-identical to one whose count did not; pass an int ``threads`` where that matters (the
checkpoints' exact resume holds for a fixed count).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from .runtime import free_cpu_cores

logger = logging.getLogger(__name__)

__all__ = ["ThreadGovernor"]


class ThreadGovernor:
    """Re-decides torch's intra-op thread count from measured update rates (module docstring).

    Args:
        max_threads: The most threads to use (usable cores); 1 disables the governor.
        period_s: Seconds of update time per measurement.
        hold_periods: Periods between probes while the rate holds.
        drop: A period slower than ``drop`` x the previous one starts a probe at once.
        margin: A probe's count is kept only if it is faster by this factor.
        set_threads: Applies a thread count (default ``torch.set_num_threads``).
        free_cores: Cores the load leaves free (default: from the 1-minute load average,
            not counting this process's own threads).

    Example:
        >>> counts = []
        >>> gov = ThreadGovernor(2, period_s=1.0, hold_periods=1, set_threads=counts.append,
        ...                      free_cores=lambda: 2, threads=2)
        >>> for _ in range(40):  # one thread is twice as fast here: the probe keeps it
        ...     gov.record(0.1 if gov.threads == 2 else 0.05)
        >>> gov.threads, counts
        (1, [1])
    """

    def __init__(
        self,
        max_threads: int,
        *,
        threads: int | None = None,
        period_s: float = 30.0,
        hold_periods: int = 10,
        drop: float = 0.6,
        margin: float = 1.1,
        set_threads: Callable[[int], None] | None = None,
        free_cores: Callable[[], int] | None = None,
    ) -> None:
        self.max_threads = max(1, int(max_threads))
        self.threads = int(threads) if threads is not None else torch.get_num_threads()
        self.period_s, self.hold_periods = float(period_s), int(hold_periods)
        self.drop, self.margin = float(drop), float(margin)
        self._set = set_threads or torch.set_num_threads
        self._free = free_cores or self._free_from_load
        self._seconds = 0.0
        self._updates = 0
        self._held = 0  # periods measured at the current count since the last decision
        self._last_rate: float | None = None
        self._probe_from: tuple[int, float] | None = None  # (count, rate) before a probe
        self.changes = 0

    def _free_from_load(self) -> int:
        return free_cpu_cores(own_threads=self.threads)  # our own threads are in the load

    def record(self, seconds: float) -> None:
        """One update took ``seconds``; may change the thread count at a period's end."""
        if self.max_threads <= 1:
            return
        self._seconds += seconds
        self._updates += 1
        if self._seconds < self.period_s:
            return
        rate = self._updates / self._seconds
        self._seconds, self._updates = 0.0, 0
        if self._probe_from is not None:  # a probe period ended: keep the faster count
            before, before_rate = self._probe_from
            self._probe_from = None
            if rate < self.margin * before_rate:
                self._apply(before, f"{rate:.1f} updates/s at the probe vs {before_rate:.1f}")
                self._last_rate = before_rate
            else:
                logger.info("torch threads: %d (%.1f updates/s vs %.1f with %d)", self.threads,
                            rate, before_rate, before)
                self._last_rate = rate
            self._held = 0
            return
        dropped = self._last_rate is not None and rate < self.drop * self._last_rate
        self._held += 1
        self._last_rate = rate
        if dropped or self._held >= self.hold_periods:
            target = self._probe_target()
            if target != self.threads:
                self._probe_from = (self.threads, rate)
                self._apply(target, "probe")
            self._held = 0

    def _probe_target(self) -> int:
        if self.threads > 1:
            return 1
        return max(1, min(self.max_threads, self._free()))

    def _apply(self, n: int, why: str) -> None:
        if n != self.threads:
            logger.info("torch threads: %d -> %d (%s)", self.threads, n, why)
            self.threads = n
            self._set(n)
            self.changes += 1
