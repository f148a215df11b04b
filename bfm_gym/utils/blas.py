"""numpy's OpenBLAS thread count, read and set while the process runs.

OpenBLAS reads ``OPENBLAS_NUM_THREADS`` (or ``OMP_NUM_THREADS``) once, when numpy is first
imported. A script that sets the variable after anything imported numpy (bfm_gym does, and so
do most libraries) keeps OpenBLAS's default: one thread per core. On the 2-core development VM
that default cost the numpy paths in two ways (measured with ``benchmarks/adaptation.py
--decision-rate``, AVX2 VM):

* **CPU.** Products of several rows (OpTI-BFM's 128 candidates, a vector env's batch) are
  split over two threads, and the helper thread keeps spinning for a while after each call.
  OpTI-BFM's decisions then cost twice the CPU time for the same wall-clock rate (shipped
  walker: 1,252 and 1,278 decisions/s, 630 against 1,278 per CPU-second), CPU that a
  ``compare`` worker on the other core loses.
* **Reproducibility.** The threaded product rounds differently: OpTI-BFM's 128-candidate
  successor features differed by up to 7e-5 between one and two threads, so candidate scores
  depended on how many cores the machine had.

:func:`one_blas_thread` runs a block with one OpenBLAS thread and restores the caller's count
afterwards (:func:`call_with_one_blas_thread` is its per-step form); the fast numpy paths
whose products OpenBLAS would thread (:mod:`bfm_gym.models.fb.fast_policy`: OpTI-BFM's
features, policy forwards of several rows such as the vector env's) run under it, and
``compare``'s workers set one thread for good. Where numpy does not link a ``scipy-openblas``
that exposes the thread setter (another BLAS, an old wheel), every function here is a no-op
and reports None/False.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["blas_threads", "call_with_one_blas_thread", "one_blas_thread", "openblas_function", "set_blas_threads"]

T = TypeVar("T")

_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "")


@functools.cache
def _openblas_libs() -> tuple[ctypes.CDLL, ...]:
    import numpy as np

    found = []
    here = os.path.dirname(np.__file__)
    for path in sorted(glob.glob(os.path.join(here, os.pardir, "numpy.libs", "*openblas*"))):
        try:
            found.append(ctypes.CDLL(path))
        except OSError:  # pragma: no cover - a broken wheel
            continue
    return tuple(found)


@functools.cache
def openblas_function(name: str) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """numpy's OpenBLAS function ``name`` (without prefix and suffix, e.g. ``"get_corename"``),
    or None. Wheels name it ``scipy_openblas_<name>64_`` (numpy >= 2) or ``openblas_<name>``."""
    for lib in _openblas_libs():
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                fn = getattr(lib, f"{prefix}{name}{suffix}", None)
                if fn is not None:
                    return fn
    return None


@functools.cache
def _getter_setter() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr] | None:  # type: ignore[name-defined]
    get, put = openblas_function("get_num_threads"), openblas_function("set_num_threads")
    if get is None or put is None:
        return None
    get.restype, get.argtypes = ctypes.c_int, []
    put.restype, put.argtypes = None, [ctypes.c_int]
    return get, put


def blas_threads() -> int | None:
    """The number of threads numpy's OpenBLAS uses now, or None where it cannot be read."""
    gs = _getter_setter()
    return None if gs is None else int(gs[0]())


def set_blas_threads(n: int) -> bool:
    """Sets numpy's OpenBLAS thread count for this process (takes effect at once, unlike the
    environment variables). Returns False where it cannot be set.

    Raises:
        ValueError: ``n`` is not a positive int.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_blas_threads: n must be a positive int, got {n!r}.")
    gs = _getter_setter()
    if gs is None:
        return False
    gs[1](n)
    return True


def _pin_one() -> int | None:
    """Sets one thread; returns the count to restore, None where nothing changed."""
    gs = _getter_setter()
    if gs is None:
        return None
    prev = gs[0]()
    if prev == 1:
        return None
    gs[1](1)
    return prev


def _restore(prev: int | None) -> None:
    if prev is not None:
        _getter_setter()[1](prev)  # type: ignore[index]


def call_with_one_blas_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` under :func:`one_blas_thread`, without a ``with`` block's cost: one C
    call when the count already is 1, three otherwise (well under a microsecond each). The
    per-step form."""
    prev = _pin_one()
    if prev is None:
        return fn(*args)
    try:
        return fn(*args)
    finally:
        _restore(prev)


class one_blas_thread:  # lower case: used like a function, ``with one_blas_thread():``
    """Runs the block with one OpenBLAS thread, then restores the previous count (also when
    the block raises); a nested block leaves the count to the outer one.

    Example:
        >>> import numpy as np
        >>> with one_blas_thread():
        ...     y = np.ones((128, 64), np.float32) @ np.ones((64, 64), np.float32)
        >>> float(y[0, 0])
        64.0
    """

    __slots__ = ("_prev",)

    def __enter__(self) -> None:
        self._prev = _pin_one()

    def __exit__(self, *exc: object) -> None:
        _restore(self._prev)
