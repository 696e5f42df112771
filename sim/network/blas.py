"""The matrix products of the weighted layers, on the fastest BLAS at hand.

Which BLAS computes an exact product does not change its result: ``ExactAffine``
(``sim.network.mac``) proves per layer that every partial sum of every order is an
integer the float holds exactly, so any kernel, blocking or FMA gives the same
integers.  Only the speed differs, and it differs a lot: NumPy 1.26's bundled
OpenBLAS (0.3.23) does not know CPUs released since (on this project's Xeon it falls
back to its generic 'Prescott' kernels), while SciPy's newer OpenBLAS picks AVX-512
kernels and runs these products about 3x faster.  So where SciPy is installed (the
``speed`` extra; the front end brings it too; the runtime does not need it) its
``dgemm``/``sgemm`` are used, else NumPy's ``@``.  They are called through CBLAS by
ctypes, which releases the GIL (SciPy's own wrappers hold it, which would serialise
the emulator's chunk threads).  ``SIM_BLAS=numpy`` in the environment forces NumPy's.
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import numpy as np

_gemm: dict[Any, Any] | None = None  # dtype -> gemm(x, w); {} when NumPy's @ is used
_ROW_MAJOR, _NO_TRANS = 101, 111  # CBLAS enums


def _cblas(lib: Any, name: str, real: Any, dtype: Any) -> Any:
    """``x @ w`` through ``cblas_?gemm`` called by ctypes, which releases the GIL
    (SciPy's f2py wrappers hold it, which would serialise the chunk threads)."""
    fn = getattr(lib, name)
    c_int, ptr = ctypes.c_int, ctypes.c_void_p
    fn.argtypes = [c_int, c_int, c_int, c_int, c_int, c_int, real, ptr, c_int, ptr, c_int, real, ptr, c_int]
    fn.restype = None

    def gemm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        x, w = np.ascontiguousarray(x, dtype=dtype), np.ascontiguousarray(w, dtype=dtype)
        (m, k), n = x.shape, w.shape[1]
        out = np.empty((m, n), dtype=dtype)
        fn(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, 1.0, x.ctypes.data, k, w.ctypes.data, n, 0.0, out.ctypes.data, n)
        return out

    return gemm


def _f2py(fn: Any) -> Any:
    def gemm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        # (x @ w).T = w.T @ x.T: both transposes are Fortran-ordered views, no copies
        return fn(1.0, w.T, np.ascontiguousarray(x).T).T

    return gemm


def _scipy_gemm() -> dict[Any, Any]:
    try:
        import scipy
        from scipy.linalg.blas import dgemm, sgemm
    except ImportError:
        return {}
    # the OpenBLAS that SciPy's wheels bundle (loaded by the import above) exports CBLAS
    libs = sorted(glob.glob(os.path.join(os.path.dirname(scipy.__file__) + ".libs", "libscipy_openblas*.so*")))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            return {
                np.dtype(np.float64): _cblas(lib, "scipy_cblas_dgemm", ctypes.c_double, np.float64),
                np.dtype(np.float32): _cblas(lib, "scipy_cblas_sgemm", ctypes.c_float, np.float32),
            }
        except (OSError, AttributeError):
            continue
    return {np.dtype(np.float64): _f2py(dgemm), np.dtype(np.float32): _f2py(sgemm)}


def _load() -> dict[Any, Any]:
    global _gemm
    if _gemm is None:
        _gemm = {} if os.environ.get("SIM_BLAS", "").lower() == "numpy" else _scipy_gemm()
    return _gemm


def backend() -> str:
    """Which BLAS the products use: ``scipy`` or ``numpy``."""
    return "scipy" if _load() else "numpy"


def use(name: str) -> None:
    """Choose the BLAS (``scipy`` or ``numpy``), e.g. to check that both agree."""
    global _gemm
    if name not in ("scipy", "numpy"):
        raise ValueError(f"unknown BLAS {name!r} (scipy, numpy)")
    gemm = _scipy_gemm() if name == "scipy" else {}
    if name == "scipy" and not gemm:
        raise ImportError("SciPy is not installed: its BLAS cannot be used")
    _gemm = gemm


def matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w`` for 2-D float arrays of one dtype, C-ordered out."""
    gemm = _load().get(w.dtype)
    if gemm is None or x.shape[0] == 0 or w.shape[1] == 0 or x.shape[1] == 0:
        return x @ w
    return gemm(x, w)
