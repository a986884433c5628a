"""Piecewise DMD (pDMD): exact DMD on N consecutive windows of a trajectory, with error indicators.

One linear model rarely fits a whole training run: the dynamics change between phases. pDMD
(Alla, Monti, Sgura [1]_) splits the snapshots into N consecutive submatrices, fits exact DMD in
each, and reconstructs each window from its own first snapshot. Watching the relative errors as N
grows shows where a single linear model breaks: a window that straddles a change of dynamics keeps
a large error until a window boundary falls on the change.

Everything is computed from the trajectory's Gram matrix ``Z = ΘΘᵀ`` (method of snapshots, Tu et
al. [2]_ §2.2), accumulated over parameter chunks, so memory is ``n_step²`` whatever the number
of parameters: with ``Φ = X1ᵀC`` and ``x̂_k = Φ(λ^k ⊙ b)``, the error ``‖x_k − x̂_k‖²`` needs only
blocks of ``Z``. The price is cancellation: relative errors below ~1e-8 (√eps) are not resolved.

References
----------
.. [1] Alla, Monti, Sgura (2024). Piecewise DMD for oscillatory and Turing spatio-temporal dynamics.
   Comput. Math. Appl. 160, 108–124. doi:10.1016/j.camwa.2024.02.022 (arXiv:2303.06512)
.. [2] Tu et al. (2014). On dynamic mode decomposition: theory and applications. doi:10.3934/jcd.2014.1.391
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from workbench.koopman.core import gram_dmd
from workbench.koopman.linalg import RankLike
from workbench.koopman.snapshots import as_trajectory, trajectory_gram

MIN_WINDOW = 3  # snapshots per window: two pairs at least


def window_fit(Zw: torch.Tensor, rank: RankLike, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact DMD of one window from its Gram matrix ``Zw`` (L × L) → (squared errors (L,), eigs).

    ``x̂_k = X1ᵀ C c_k`` with ``c_k = λ^k ⊙ b`` (Tu et al. [2]_, eq. (2.12)–(2.13)), so
    ``‖x_k − x̂_k‖² = Z_kk − 2 Re(Z_{k,1:} C c_k) + c_kᴴ (Cᴴ Z_{1:,1:} C) c_k``.
    A window of numerical rank 0 (all zero) is reconstructed as zero.
    """
    red = gram_dmd(Zw[:-1, :-1], Zw[:-1, 1:], rank, n_features, clip=True)
    norms = torch.diagonal(Zw).clone()
    if red.rank == 0:
        return norms.cpu().numpy(), np.zeros(0, dtype=complex)
    b = red.amplitudes_from_gram(Zw[1:, 1:], Zw[1:, 0], max_cond=None)
    C = red.coef
    k = torch.arange(Zw.shape[0], device=C.device).to(C.dtype)
    c = red.eigs.unsqueeze(0) ** k.unsqueeze(1) * b  # (L, r)
    cross = ((Zw[:, 1:].to(C.dtype) @ C) * c).sum(1).real
    recon = ((c.conj() @ (C.mH @ Zw[1:, 1:].to(C.dtype) @ C)) * c).sum(1).real
    return (norms - 2 * cross + recon).clamp_min(0).cpu().numpy(), red.eigs.cpu().numpy()


def _check_windows(n_windows: int | Sequence[int], n_step: int) -> list[int]:
    values = [n_windows] if isinstance(n_windows, (int, np.integer)) else list(n_windows)
    if not values:
        raise ValueError("n_windows must hold at least one window count")
    for n in values:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n_windows must be positive ints, got {n!r}")
        if n_step // n < MIN_WINDOW:
            raise ValueError(f"n_windows={n} leaves windows of {n_step // n} snapshots of the {n_step} recorded "
                             f"steps; each window needs at least {MIN_WINDOW} (use n_windows <= {n_step // MIN_WINDOW})")
    return [int(n) for n in values]


def piecewise_dmd(traj_or_run: Any, n_windows: int | Sequence[int] = (1, 2, 4, 8), rank: RankLike = None, *,
                  chunk_bytes: int = 2**27, device: str | torch.device | None = "auto") -> xr.Dataset:
    """Piecewise DMD of a training trajectory for each window count N (Alla, Monti, Sgura [1]_).

    Parameters
    ----------
    traj_or_run : a Run (its ``trajectory()``), a (``step``, ``param``) DataArray or a 2-D array.
    n_windows : the window counts N to compare; the steps are split into N consecutive windows of
        (nearly) equal length, each of at least 3 snapshots.
    rank : DMD rank per window (``None``: numerical rank; an int above a window's numerical rank
        is lowered to it; float energy fraction; ``"optimal"``).
    chunk_bytes, device : as :func:`~workbench.koopman.trajectory_spectrum`.

    Returns
    -------
    xr.Dataset with dims ``n_windows`` (coordinate: N), ``window``, ``step``, ``eig``:
    ``error`` ``‖X − X̂‖_F/‖X‖_F``, ``mean_error`` / ``max_error`` (mean / max over steps of
    ``step_error`` = ``‖x_t − x̂_t‖/‖x_t‖``) — the paper's relative error indicators as N grows —
    ``window_error`` (n_windows, window) ``‖X_j − X̂_j‖_F/‖X_j‖_F``, ``window_start`` /
    ``window_end`` (steps), ``window_rank``, and each window's eigenvalues ``eig_real`` /
    ``eig_imag`` (n_windows, window, eig). Windows beyond N are NaN.
    """
    traj = as_trajectory(traj_or_run)
    n_step, n_param = traj.shape
    counts = _check_windows(n_windows, n_step)
    Z = trajectory_gram(traj, chunk_bytes=chunk_bytes, device=device)
    steps = np.asarray(traj["step"].values)
    width, K = max(counts), len(counts)
    sq_err = np.zeros((K, n_step))
    win_err, start, end, ranks = (np.full((K, width), np.nan) for _ in range(4))
    eigs: list[list[np.ndarray]] = []
    for i, n in enumerate(counts):
        eigs.append([])
        for j, idx in enumerate(np.array_split(np.arange(n_step), n)):
            s0, s1 = int(idx[0]), int(idx[-1]) + 1
            e2, lam = window_fit(Z[s0:s1, s0:s1], rank, n_param)
            sq_err[i, s0:s1] = e2
            win_err[i, j] = np.sqrt(e2.sum() / max(float(torch.trace(Z[s0:s1, s0:s1])), np.finfo(float).tiny))
            start[i, j], end[i, j], ranks[i, j] = steps[s0], steps[s1 - 1], lam.size
            eigs[i].append(lam)
    n_eig = max(lam.size for row in eigs for lam in row)
    E = np.full((K, width, n_eig), complex(np.nan, np.nan))
    for i, row in enumerate(eigs):
        for j, lam in enumerate(row):
            E[i, j, :lam.size] = lam
    norms = np.maximum(torch.diagonal(Z).cpu().numpy(), np.finfo(float).tiny)
    step_err = np.sqrt(sq_err / norms)
    return xr.Dataset(
        {"error": ("n_windows", np.sqrt(sq_err.sum(1) / norms.sum())),
         "mean_error": ("n_windows", step_err.mean(1)), "max_error": ("n_windows", step_err.max(1)),
         "step_error": (("n_windows", "step"), step_err), "window_error": (("n_windows", "window"), win_err),
         "window_start": (("n_windows", "window"), start), "window_end": (("n_windows", "window"), end),
         "window_rank": (("n_windows", "window"), ranks),
         "eig_real": (("n_windows", "window", "eig"), E.real), "eig_imag": (("n_windows", "window", "eig"), E.imag)},
        coords={"n_windows": counts, "window": np.arange(width), "step": steps, "eig": np.arange(n_eig)},
        attrs={"method": "piecewise exact DMD (method of snapshots)", "rank": str(rank),
               "resolution": "relative errors below ~1e-8 are not resolved (Gram route)",
               "reference": "Alla, Monti, Sgura 2024 doi:10.1016/j.camwa.2024.02.022"})
