"""The emulator's BLAS choice changes speed, never results: both backends give NumPy's
exact integer products (the csim oracle tests check whole networks under both)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.network import blas


@pytest.fixture
def restore_backend():
    before = blas.backend()
    yield
    blas.use(before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", ["scipy", "numpy"])
def test_products_are_exact_on_every_backend(backend, dtype, restore_backend):
    blas.use(backend)
    assert blas.backend() == backend
    rng = np.random.default_rng(7)
    bits = 8 if dtype == np.float32 else 20  # |partial sums| < 2**(2 bits + 6) stay exact in the dtype
    for m, k, n in [(517, 33, 7), (1, 1, 1), (4096, 16, 64), (3, 64, 1)]:
        x = rng.integers(-(2**bits), 2**bits, (m, k))
        w = rng.integers(-(2**bits), 2**bits, (k, n))
        got = blas.matmul(x.astype(dtype), w.astype(dtype))
        assert got.dtype == dtype and got.shape == (m, n) and got.flags.c_contiguous
        assert np.array_equal(got.astype(np.int64), x @ w)
    x = rng.integers(-100, 100, (50, 40)).astype(dtype)
    w = rng.integers(-100, 100, (20, 6)).astype(dtype)
    strided = x[::2, ::2]  # not contiguous: copied, not misread
    assert np.array_equal(blas.matmul(strided, w), strided @ w)
    assert blas.matmul(np.zeros((0, 20), dtype), w).shape == (0, 6)


def test_unknown_backend_is_refused(restore_backend):
    with pytest.raises(ValueError, match="unknown BLAS 'mkl'"):
        blas.use("mkl")


CONCURRENT_CALLS = """
import threading, time
from sim.network import parallel

controller = parallel._controller()
assert controller, "threadpoolctl is part of the test install (the speed extra)"
counts = lambda: [lib["num_threads"] for lib in controller.info() if lib["user_api"] == "blas"]
before = counts()
seen = []

def call(delay):
    with parallel._one_blas_thread():
        time.sleep(delay)
        seen.append(counts())

threads = [threading.Thread(target=call, args=(0.02 * (i + 1),)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert seen and all(c == [1] * len(before) for c in seen), seen
assert counts() == before, (counts(), before)
print("held", seen, "restored", before)
"""


def test_blas_limit_held_across_concurrent_calls_and_restored():
    """The one-thread limit is process-wide: overlapping emulator calls from several
    user threads keep it until the last one ends, then the original counts return.
    In a fresh interpreter: once the main thread has set and restored an OpenBLAS
    limit (an emulator call on it, as every other test makes), a limit set from another
    thread no longer takes in this OpenBLAS (0.3.23/0.3.30, pthreads): speed only, see
    docs/network.md."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", CONCURRENT_CALLS], cwd=root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("held [[1"), (r.stdout, r.stderr)
