"""The matrix products of the weighted layers, on the fastest BLAS at hand.

Which BLAS computes an exact product does not change its result: ``ExactAffine``
(``sim.network.mac``) proves per layer that every partial sum of every order is an
integer the float holds exactly, so any kernel, blocking or FMA gives the same
integers.  Only the speed differs, and it differs a lot: NumPy 1.26's bundled
OpenBLAS (0.3.23) does not know CPUs released since (on this project's Xeon it falls
back to its generic 'Prescott' kernels), while SciPy's newer OpenBLAS picks AVX-512
kernels and runs these products about 3x faster.  So where SciPy is installed (the
``speed`` extra; the front end brings it too; the runtime does not need it) its
``dgemm``/``sgemm`` are used, else NumPy's ``@``.  ``SIM_BLAS=numpy`` in the
environment forces NumPy's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_gemm: dict[Any, Any] | None = None  # dtype -> scipy gemm; {} when NumPy's @ is used


def _scipy_gemm() -> dict[Any, Any]:
    try:
        from scipy.linalg.blas import dgemm, sgemm
    except ImportError:
        return {}
    return {np.dtype(np.float64): dgemm, np.dtype(np.float32): sgemm}


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
    # (x @ w).T = w.T @ x.T: both transposes are Fortran-ordered views, no copies
    return gemm(1.0, w.T, np.ascontiguousarray(x).T).T
