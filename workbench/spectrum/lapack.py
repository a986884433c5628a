"""Eigenvalues of symmetric float64 matrices, several threads at once (LAPACK ``dsyevd``, no GIL).

The spectrum lens spreads its per-layer eigensolves over a pool of threads (see
:mod:`workbench.spectrum.analysis`). ``numpy.linalg.eigvalsh`` keeps the GIL for a single small
matrix (its gufunc releases it only for large outer loops), so on 384×384 Gram matrices two
threads ran serially — 13.1 ms per pair vs 5.9 ms for one call alone, on 2 cores. The same LAPACK
routine called through :mod:`ctypes`, which releases the GIL for the duration of a foreign call,
ran 7.8 ms per pair. This module calls ``LAPACKE_dsyevd`` (eigenvalues only: ``dsytrd`` + ``dsterf``)
of the OpenBLAS that NumPy (or SciPy) wheels bundle (``libscipy_openblas``), and falls back to
``numpy.linalg.eigvalsh`` where no such library is loaded (e.g. a conda NumPy on MKL).
The routine is checked once against NumPy on a known matrix before it is used.
"""
from __future__ import annotations

import ctypes
from functools import cache

import numpy as np
from threadpoolctl import threadpool_info

# (symbol, integer type) of LAPACKE_dsyevd in the OpenBLAS builds of the NumPy/SciPy wheels
_SYMBOLS = (("scipy_LAPACKE_dsyevd64_", ctypes.c_int64), ("scipy_LAPACKE_dsyevd", ctypes.c_int32))
_COL_MAJOR = 102

__all__ = ["eigvalsh", "releases_gil"]


@cache
def _dsyevd():
    """The working ctypes ``LAPACKE_dsyevd``, or None (then NumPy is used)."""
    for info in threadpool_info():
        if info.get("internal_api") != "openblas" or "scipy_openblas" not in str(info.get("filepath")):
            continue
        try:
            lib = ctypes.CDLL(info["filepath"])
        except OSError:
            continue
        for name, integer in _SYMBOLS:
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            fn.restype = integer
            fn.argtypes = [ctypes.c_int, ctypes.c_char, ctypes.c_char, integer, ctypes.c_void_p, integer,
                           ctypes.c_void_p]
            if _works(fn):
                return fn
    return None


def _call(fn, a: np.ndarray) -> np.ndarray:
    n = a.shape[0]
    w = np.empty(n)
    info = fn(_COL_MAJOR, b"N", b"L", n, a.ctypes.data, n, w.ctypes.data)
    if info != 0:
        raise np.linalg.LinAlgError(f"LAPACK dsyevd failed (info={info}) on a {n}×{n} matrix")
    return w


def _works(fn) -> bool:
    a = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]])
    try:
        return bool(np.allclose(_call(fn, a.copy()), np.linalg.eigvalsh(a), rtol=1e-12, atol=1e-12))
    except (OSError, ValueError, ctypes.ArgumentError, np.linalg.LinAlgError):  # another ABI: do not use it
        return False


def releases_gil() -> bool:
    """True when :func:`eigvalsh` goes through ctypes (GIL released), False when through NumPy."""
    return _dsyevd() is not None


def eigvalsh(a: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """Ascending eigenvalues of the symmetric matrix ``a`` (both triangles must hold it), float64.

    With ``overwrite=True`` a C- or Fortran-contiguous float64 ``a`` is used as LAPACK's workspace
    (destroyed); otherwise it is copied first.
    """
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {a.shape}")
    fn = _dsyevd()
    if fn is None or a.shape[0] == 0:
        return np.linalg.eigvalsh(a)
    # a symmetric matrix is the same in C and Fortran order: hand the buffer over as column-major
    ok = a.dtype == np.float64 and (a.flags.c_contiguous or a.flags.f_contiguous)
    return _call(fn, a if overwrite and ok else np.array(a, dtype=np.float64, order="F"))
