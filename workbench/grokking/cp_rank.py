"""CP (canonical polyadic) decomposition of 3-tensors by alternating least squares, and a numerical CP rank.

A rank-``r`` CP model is ``T[i, j, k] ≈ Σ_s A[i, s] B[j, s] C[k, s]``. ALS ([1], Sec. 3.4) fixes two
factors and solves for the third in closed form,

    A ← T₍₁₎ (C ⊙ B) (CᵀC ∗ BᵀB + λI)⁻¹,

(``⊙`` Khatri–Rao, ``∗`` Hadamard; ``λ`` a tiny ridge that keeps swamps solvable), and cycles. ALS
is a local method, so :func:`cp_als` keeps the best of several random restarts.

**Numerical rank** (:func:`cp_rank`). Floating point never gives an exact zero, so "rank ``r`` is
reachable" means: some restart reaches a relative error ``‖T − T̂‖/‖T‖ ≤ tol`` (default ``1e-6``).
Whether a rank is *un*reachable is a statement about the border rank — the smallest ``r`` whose
rank-``r`` tensors come arbitrarily close to ``T``: below the border rank the best relative error is
bounded away from zero, so a gap of many orders between ``r`` and ``r − 1`` is the floating-point
signature of "rank ``r`` is reachable, ``r − 1`` is not". The 2×2 matrix multiplication tensor
``⟨2,2,2⟩`` (:func:`matrix_multiplication_tensor`) has rank 7 (Strassen 1969; Winograd 1971) and
border rank 7 (Landsberg 2006): ALS reaches rank 7 to ``1e-10`` and stalls at ``1/√8 ≈ 0.354`` at
rank 6 — one of the eight terms of ``tr(XYZ)`` left out (tested). For a learned tensor, which is only approximately low rank, ``cp_rank`` takes a looser
``tol`` and reports the error at every rank tried.

References
----------
.. [1] Kolda, Bader (2009). Tensor decompositions and applications. SIAM Review 51(3), 455-500.
.. [2] Strassen (1969). Gaussian elimination is not optimal. Numer. Math. 13, 354-356.
.. [3] Landsberg (2006). The border rank of the multiplication of 2×2 matrices is seven. JAMS 19, 447-459.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from workbench.validation import check_range

REFERENCE = "Kolda & Bader 2009 (CP-ALS); Strassen 1969; Landsberg 2006"


def matrix_multiplication_tensor(n: int = 2) -> np.ndarray:
    """``⟨n,n,n⟩``: ``T[(i,j), (j,k), (k,i)] = 1`` — the trilinear form ``tr(XYZ)``, ``(n², n², n²)``."""
    check_range(n, "n", 1)
    T = np.zeros((n * n,) * 3)
    for i in range(n):
        for j in range(n):
            for k in range(n):
                T[i * n + j, j * n + k, k * n + i] = 1.0
    return T


def _rel_error(T: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> float:
    return float(np.linalg.norm(T - np.einsum("ir,jr,kr->ijk", A, B, C)) / np.linalg.norm(T))


def _als(T: np.ndarray, rank: int, rng: np.random.Generator, max_iter: int, ridge: float,
         tol: float) -> tuple[float, list[np.ndarray]]:
    F = [rng.standard_normal((n, rank)) for n in T.shape]
    scale = np.linalg.norm(T) ** (1 / 3) / np.sqrt(rank)
    F = [f * scale / np.sqrt(f.shape[0]) for f in F]
    specs = ("ijk,jr,kr->ir", "ijk,ir,kr->jr", "ijk,ir,jr->kr")
    prev = np.inf
    for it in range(max_iter):
        for m in range(3):
            X, Y = (F[i] for i in range(3) if i != m)
            G = (X.T @ X) * (Y.T @ Y)
            rhs = np.einsum(specs[m], T, X, Y)
            F[m] = np.linalg.solve(G + ridge * np.trace(G) / rank * np.eye(rank), rhs.T).T
        if it % 10 == 9 or it == max_iter - 1:
            err = _rel_error(T, *F)
            if err <= tol or prev - err < 1e-7 * max(prev, 1e-300):
                return err, F
            prev = err
    return _rel_error(T, *F), F


def cp_als(T: Any, rank: int, *, restarts: int = 10, max_iter: int = 2000, ridge: float = 1e-12,
           tol: float = 1e-12, seed: int = 0) -> tuple[float, list[np.ndarray]]:
    """Best rank-``rank`` CP fit of a 3-tensor over ``restarts`` random starts (module docstring).

    Parameters
    ----------
    T : ``(I, J, K)`` array-like (an ``xr.DataArray`` is read as its values).
    rank : number of rank-one terms ``r``.
    restarts : random Gaussian starts; the best final error is kept.
    max_iter : ALS sweeps per start (each sweep updates A, B, C once).
    ridge : relative Tikhonov term ``λ = ridge · tr(G)/r`` in each normal equation.
    tol : a start stops once its relative error is below ``tol``, and so does the search.

    Returns
    -------
    ``(relative error, [A, B, C])`` of the best start.
    """
    T = np.asarray(T.values if isinstance(T, xr.DataArray) else T, dtype=np.float64)
    if T.ndim != 3 or not np.isfinite(T).all() or not np.linalg.norm(T) > 0:
        raise ValueError(f"T must be a finite, non-zero 3-tensor, got shape {T.shape}")
    check_range(rank, "rank", 1)
    check_range(restarts, "restarts", 1)
    rng = np.random.default_rng(seed)
    best: tuple[float, list[np.ndarray]] = (np.inf, [])
    for _ in range(restarts):
        err, F = _als(T, rank, rng, max_iter, ridge, tol)
        if err < best[0]:
            best = (err, F)
        if best[0] <= tol:
            break
    return best


def multilinear_rank(T: np.ndarray, rtol: float = 1e-9) -> tuple[int, int, int]:
    """Numerical ranks of the three unfoldings; the CP rank is at least their maximum ([1], Sec. 4)."""
    out = []
    for m in range(3):
        s = np.linalg.svd(np.moveaxis(T, m, 0).reshape(T.shape[m], -1), compute_uv=False)
        out.append(int((s > rtol * s[0]).sum()))
    return tuple(out)


def cp_rank(T: Any, *, tol: float = 1e-6, max_rank: int | None = None, restarts: int = 10,
            max_iter: int = 3000, seed: int = 0) -> xr.Dataset:
    """Numerical CP rank: the smallest ``r`` whose best ALS fit has relative error ``≤ tol``.

    Scans ``r`` upwards from the largest :func:`multilinear_rank` (a lower bound) to ``max_rank``
    (default: the smallest product of two dims, an upper bound). An upward scan, not a bisection:
    above the rank ALS converges sublinearly (degenerate, over-complete factors), so errors there
    are not a reliable test; every rank tried is reported.

    Returns
    -------
    xr.Dataset: ``error`` over ``r`` (the ranks tried) and the scalar ``cp_rank`` (``-1`` if even
    ``max_rank`` misses ``tol``); attrs ``tol``, ``reference``.
    """
    T = np.asarray(T.values if isinstance(T, xr.DataArray) else T, dtype=np.float64)
    check_range(tol, "tol", 0.0, low_open=True)
    if T.ndim != 3:
        raise ValueError(f"T must be a 3-tensor, got shape {T.shape}")
    I, J, K = T.shape
    hi = max_rank if max_rank is not None else min(I * J, J * K, I * K)
    check_range(hi, "max_rank", 1)
    errors, found = [], -1
    ranks = list(range(min(max(multilinear_rank(T, rtol=tol / 10)), hi), hi + 1))
    for r in ranks:
        errors.append(cp_als(T, r, restarts=restarts, max_iter=max_iter, tol=tol / 10, seed=seed + r)[0])
        if errors[-1] <= tol:
            found = r
            break
    return xr.Dataset({"error": ("r", errors), "cp_rank": found}, coords={"r": ranks[:len(errors)]},
                      attrs={"tol": tol, "reference": REFERENCE})
