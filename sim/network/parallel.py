"""Running a network over a big batch: chunks of samples on a few threads.

NumPy's ufuncs and ``sim.network.blas`` release the GIL, so chunks run in parallel
threads.  But OpenBLAS starts its own threads for each big matrix product, and chunk
threads each driving a multi-threaded BLAS oversubscribe the cores (measured on 2
cores: 465k samples/s, against 700k with BLAS held to one thread per chunk), while
its idle threads spin for a while after each product, taking CPU from whatever else
runs (the node's receive loop).  Where ``threadpoolctl`` is installed (the ``speed``
extra; the runtime does not need it) BLAS is held to one thread while the emulator
runs and every core gets a chunk thread; without it, half the cores get chunk
threads and BLAS keeps its own.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from sim.network import blas

CHUNK = 4096  # samples per pass through the layers: intermediates stay cache-sized
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_pool: ThreadPoolExecutor | None = None
_blas: Any = None  # threadpoolctl.ThreadpoolController, found once; False: not installed


def _controller() -> Any:
    global _blas
    if _blas is None:
        blas.backend()  # loads SciPy's BLAS first, if used, so that the limits reach it
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas = False
        else:
            _blas = ThreadpoolController()
    return _blas


def prepare() -> None:
    """Load the BLAS and the thread controller now (~0.15 s, mostly importing SciPy),
    so that the first prediction (the node's first fallback batch) does not pay it."""
    _controller()


def threads() -> int:
    """Chunk threads: every core with BLAS held to one thread, else half of them (at most 4)."""
    return max(1, min(4, CORES if _controller() else CORES // 2))


_held = 0  # emulator calls running (several user threads may predict at once)
_held_lock = threading.Lock()
_limiter: Any = None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS held to one thread from the first concurrent call's start to the last one's
    end (the limit is process-wide: nested holders must not restore it early)."""
    global _held, _limiter
    controller = _controller()
    if not controller:
        yield
        return
    with _held_lock:
        if _held == 0:
            _limiter = controller.limit(limits=1, user_api="blas")
        _held += 1
    try:
        yield
    finally:
        with _held_lock:
            _held -= 1
            if _held == 0:
                _limiter.restore_original_limits()
                _limiter = None


def _forget_pool() -> None:
    """A forked child inherits the pool object but not its threads: start afresh."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def chunked(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], empty_shape: tuple[int, ...]) -> np.ndarray:
    """``fn`` over chunks of ``x`` (in threads when there are several), concatenated."""
    global _pool
    parts = [x[i : i + CHUNK] for i in range(0, len(x), CHUNK)]
    if not parts:
        return np.zeros((0, *empty_shape), dtype=np.int64)
    n_threads = threads()
    with _one_blas_thread():
        if len(parts) == 1 or n_threads == 1:
            return np.concatenate([fn(p) for p in parts])
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="sim-network")
        return np.concatenate(list(_pool.map(fn, parts)))
