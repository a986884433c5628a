"""Linear algebra shared by the Koopman estimators: truncated SVDs, rank rules, Galerkin residuals.

Everything here takes and returns torch float64 tensors; rows are time (snapshots), columns are
features or dictionary functions. Public estimators live in :mod:`workbench.koopman`.

References
----------
.. [1] Schmid (2010). Dynamic mode decomposition of numerical and experimental data. JFM 656.
.. [2] Tu, Rowley, Luchtenburg, Brunton, Kutz (2014). On dynamic mode decomposition: theory and
   applications. J. Comput. Dyn. 1(2). doi:10.3934/jcd.2014.1.391
.. [3] Gavish & Donoho (2014). The optimal hard threshold for singular values is 4/√3.
   IEEE Trans. Inf. Theory 60(8). doi:10.1109/TIT.2014.2323359
.. [4] Halko, Martinsson, Tropp (2011). Finding structure with randomness. SIAM Rev. 53(2).
.. [5] Colbrook & Townsend (2023). Rigorous data-driven computation of spectral properties of
   Koopman operators for dynamical systems. CPAM. doi:10.1002/cpa.22125
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from threadpoolctl import ThreadpoolController

RankLike = int | float | str | None
_EPS = torch.finfo(torch.float64).eps


_BLAS = ThreadpoolController()  # introspected once; limiting threads per call is then cheap
# snapshots from which the top-eigenpair subset solver beats a full eigh (1 thread, measured:
# m = 40: 1.5 ms vs 0.45 ms full; m = 400: 30 ms vs 70 ms) — small windows take the full solver
_SUBSET_MIN = 128


def eig_order(eigs: torch.Tensor) -> torch.Tensor:
    """Deterministic order of eigenvalues: descending modulus, then descending imaginary part."""
    e = eigs.detach().cpu().numpy()
    return torch.as_tensor(np.lexsort((-np.round(e.imag, 12), -np.round(np.abs(e), 12))), device=eigs.device)


def blas_matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A @ B``; on CPU through NumPy's BLAS. Every large product of a fit goes through this one BLAS
    library: OpenBLAS threads spin-wait after a call, and a second library (SciPy's, torch's) running
    next to them ran 2x slower here; NumPy is also 2x faster than torch for (modes × time) @ (time ×
    features)."""
    if A.device.type == "cpu" and A.dtype == B.dtype:
        return torch.from_numpy(A.numpy() @ B.numpy())
    return A @ B


def gram(A: torch.Tensor) -> torch.Tensor:
    """``A Aᵀ``; NumPy's matmul recognises ``A @ A.T`` and calls BLAS ``syrk`` (half the flops)."""
    return blas_matmul(A, A.mT)


def gavish_donoho_rank(s: torch.Tensor, shape: tuple[int, int]) -> int:
    """Optimal hard-threshold rank for unknown noise level (Gavish & Donoho 2014, eq. (4) & Table IV).

    Keeps singular values above ``ω(β) · median(s)`` with β = min/max aspect ratio and the
    polynomial approximation ω(β) ≈ 0.56β³ − 0.95β² + 1.82β + 1.43.
    """
    beta = min(shape) / max(shape)
    omega = 0.56 * beta**3 - 0.95 * beta**2 + 1.82 * beta + 1.43
    tau = omega * torch.median(s)
    return max(int((s > tau).sum()), 1)


def numerical_rank(s: torch.Tensor, tol: float) -> int:
    """Number of singular values above ``tol · s_max`` (``s`` sorted descending)."""
    if s.numel() == 0 or float(s[0]) == 0.0:
        return 0
    return int((s > tol * s[0]).sum())


def resolve_rank(rank: RankLike, s: torch.Tensor, shape: tuple[int, int], tol: float, *, clip: bool = False) -> int:
    """Turn a rank specification into an int, validating it against the numerical rank.

    ``None`` → numerical rank; ``int`` → that rank (``ValueError`` if above the numerical rank, or
    the numerical rank itself, possibly 0, when ``clip``); ``float`` in (0, 1] → smallest rank whose
    cumulative energy ``Σσ²`` reaches the fraction (note: PyDMD uses ``Σσ`` instead); ``"optimal"``
    → Gavish–Donoho hard threshold.
    """
    available = numerical_rank(s, tol)
    if clip and available == 0:
        return 0
    if available == 0:
        raise ValueError("X has no non-zero singular value: the snapshots are all zero")
    if rank is None:
        return available
    if isinstance(rank, str):
        if rank != "optimal":
            raise ValueError(f"rank must be None, a positive int, a float in (0, 1] or 'optimal', got {rank!r}")
        return min(gavish_donoho_rank(s, shape), available)
    if isinstance(rank, bool):
        raise TypeError(f"rank must be None, int, float or 'optimal', got bool {rank!r}")
    if isinstance(rank, int):
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        if rank > available and clip:
            return available
        if rank > available:
            raise ValueError(f"rank={rank} exceeds the numerical rank of the snapshot matrix ({available} of "
                             f"at most {min(shape)}); choose rank <= {available}")
        return rank
    if isinstance(rank, float):
        if not 0.0 < rank <= 1.0:
            raise ValueError(f"rank given as an energy fraction must lie in (0, 1], got {rank}")
        energy = torch.cumsum(s**2, 0) / torch.sum(s**2)
        return min(int(torch.searchsorted(energy, torch.tensor(rank, dtype=energy.dtype) - 1e-15)) + 1, available)
    raise TypeError(f"rank must be None, int, float or 'optimal', got {type(rank).__name__}")


@dataclass
class TruncatedSVD:
    """``X0ᵀ ≈ U diag(s) Vᵀ`` truncated to rank r; ``U`` is ``None`` on the Gram route."""

    U: torch.Tensor | None  # (feature, r)
    s: torch.Tensor  # (r,)
    V: torch.Tensor  # (time, r)


def svd_direct(X0: torch.Tensor, rank: RankLike) -> TruncatedSVD:
    """Thin SVD of the snapshot matrix (rows = time), as in exact DMD [1]_, [2]_."""
    U, s, Vh = torch.linalg.svd(X0.mT, full_matrices=False)  # X0ᵀ = U s Vᵀ : (feature, time)
    tol = max(X0.shape) * _EPS
    r = resolve_rank(rank, s, tuple(X0.shape), tol)
    return TruncatedSVD(U[:, :r], s[:r], Vh[:r].mT)


def svd_from_gram(gram: torch.Tensor, shape: tuple[int, int], rank: RankLike, *, clip: bool = False) -> TruncatedSVD:
    """Method of snapshots: ``X0 X0ᵀ = V diag(s²) Vᵀ`` (Sirovich 1987; Tu et al. [2]_, §2.2).

    Costs one ``(time × time)`` Gram matrix instead of a ``(feature × time)`` SVD, which is what
    makes tall data (features ≫ snapshots: network weights) cheap. Singular values below
    ``√(m·eps)·s_max`` are not resolved by the Gram matrix and count as zero. ``clip``: an int
    ``rank`` above the numerical rank gives the numerical rank (see :func:`resolve_rank`).
    """
    m = gram.shape[0]
    tol = (max(m, 1) * _EPS) ** 0.5 * 10
    if (isinstance(rank, int) and not isinstance(rank, bool) and 1 <= rank < m and m >= _SUBSET_MIN
            and gram.device.type == "cpu"):
        # an int rank needs only the top eigenpairs: LAPACK ?syevx on that subset skips most of the back-transform
        # one BLAS thread: the (time × time) problem is small, and right after the torch/numpy work on
        # the snapshots a multi-threaded LAPACK call here ran ~10x slower than alone (thread contention)
        with _BLAS.limit(limits=1, user_api="blas"):
            evals, evecs = scipy.linalg.eigh(gram.numpy(), subset_by_index=[m - rank, m - 1], driver="evr")
        s = torch.from_numpy(evals[::-1].copy()).clamp_min(0).sqrt()
        if numerical_rank(s, tol) == rank:
            return TruncatedSVD(None, s, torch.from_numpy(evecs[:, ::-1].copy()))
    evals, evecs = torch.linalg.eigh(gram)  # all eigenpairs: rank rules, or the error message below
    evals, evecs = evals.flip(0), evecs.flip(1)
    s = evals.clamp_min(0).sqrt()
    r = resolve_rank(rank, s, shape, tol, clip=clip)
    return TruncatedSVD(None, s[:r], evecs[:, :r])


def svd_randomized(X0: torch.Tensor, rank: RankLike, *, n_oversamples: int = 10, n_power_iter: int = 1,
                   generator: torch.Generator | None = None) -> TruncatedSVD:
    """Randomized range finder + SVD of the small projected matrix (Halko et al. [4]_, Alg. 4.4/5.1).

    ``rank`` must be an int here (the sketch size is ``rank + n_oversamples``).
    """
    if not isinstance(rank, int) or isinstance(rank, bool):
        raise TypeError(f"method='randomized' needs an integer rank, got {rank!r}")
    A = X0.mT  # (feature, time)
    k = min(rank + n_oversamples, min(A.shape))
    omega = torch.randn(A.shape[1], k, dtype=A.dtype, generator=generator).to(A.device)
    Q, _ = torch.linalg.qr(A @ omega)
    for _ in range(n_power_iter):
        Q, _ = torch.linalg.qr(A.mT @ Q)
        Q, _ = torch.linalg.qr(A @ Q)
    Ub, s, Vh = torch.linalg.svd(Q.mT @ A, full_matrices=False)
    r = resolve_rank(rank, s, tuple(X0.shape), max(X0.shape) * _EPS)
    return TruncatedSVD((Q @ Ub)[:, :r], s[:r], Vh[:r].mT)


def lstsq_from_gram(coef: torch.Tensor, gram_yy: torch.Tensor, gram_yx: torch.Tensor,
                    max_cond: float | None = 1e8) -> torch.Tensor | None:
    """``argmin_b ‖Yᵀ C b − x‖`` from Gram blocks only: ``(Cᴴ (Y Yᵀ) C) b = Cᴴ (Y x)``.

    The exact-DMD modes are ``Φ = X1ᵀ C`` with ``C = V Σ⁻¹ W`` (Tu et al. [2]_, eq. (2.13) for the
    amplitudes ``Φ b ≈ x0``), so the ``(mode × mode)`` normal equations need only ``X1 X1ᵀ`` and
    ``X1 x0``, both blocks of the snapshot Gram matrix: no pass over the features. Normal equations
    square the condition number, so this returns ``None`` (caller falls back to a QR least-squares
    fit on ``Φ``) when ``cond(ΦᴴΦ) > max_cond`` (relative error then up to ~``eps · max_cond``).
    ``max_cond=None`` never refuses: the normal equations are solved in the minimum-norm
    least-squares sense (for callers that hold only the Gram matrix, with no ``Φ`` to fall back on).
    """
    c = coef.to(torch.complex128)
    normal = c.mH @ gram_yy.to(c.dtype) @ c
    normal = (normal + normal.mH) / 2
    if max_cond is None:
        return torch.linalg.lstsq(normal, c.mH @ gram_yx.to(c.dtype)).solution
    evals = torch.linalg.eigvalsh(normal)
    if not float(evals[0]) > float(evals[-1]) / max_cond:
        return None
    return torch.linalg.solve(normal, c.mH @ gram_yx.to(c.dtype))


@dataclass
class GalerkinQR:
    """Stable factorisation of the EDMD Galerkin problem (Colbrook & Townsend [5]_, §4).

    With quadrature weights ``W`` and ``W^{1/2} Ψx = Q R`` (thin QR), the Galerkin matrices are
    ``G = Ψxᴴ W Ψx = RᴴR``, ``A = Ψxᴴ W Ψy = Rᴴ Qᴴ B R`` where ``B = W^{1/2} Ψy R⁻¹`` and
    ``L = Ψyᴴ W Ψy = Rᴴ Bᴴ B R``. Splitting ``B = Q Kt + B⊥`` gives ``Kt = R K R⁻¹`` (similar to
    the EDMD matrix ``K = G⁻¹A``) and the residual part ``B⊥``, with ``R⊥`` from ``B⊥ = Q⊥ R⊥``.
    """

    R: torch.Tensor  # (n, n)
    Kt: torch.Tensor  # (n, n), similar to K = G^{-1} A
    R_perp: torch.Tensor  # (n, n) or fewer rows


def galerkin_qr(psi_x: torch.Tensor, psi_y: torch.Tensor, weights: torch.Tensor | None = None) -> GalerkinQR:
    """Factorise the weighted Galerkin problem of ``Ψy ≈ Ψx K`` (rows = samples)."""
    if weights is None:
        w = torch.full((psi_x.shape[0], 1), psi_x.shape[0] ** -0.5, dtype=psi_x.dtype, device=psi_x.device)
    else:
        w = weights.reshape(-1, 1).sqrt()
    Q, R = torch.linalg.qr(w * psi_x)
    B = torch.linalg.solve_triangular(R, w * psi_y, upper=True, left=False)  # B R = wΨy
    Kt = Q.mT @ B
    B_perp = B - Q @ Kt
    B_perp = B_perp - Q @ (Q.mT @ B_perp)  # one re-orthogonalisation pass for accuracy
    R_perp = torch.linalg.qr(B_perp, mode="r")[1]
    return GalerkinQR(R, Kt, R_perp)


def residuals_from_qr(fac: GalerkinQR, eigs: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """ResDMD residual of each eigenpair (Colbrook & Townsend [5]_, eq. (4.6)).

    .. math:: \\mathrm{res}(λ, g)^2 = \\frac{g^* (L - λA^* - \\bar λ A + |λ|^2 G) g}{g^* G g}
              = \\frac{\\|(K_t - λ)h\\|^2 + \\|R_⊥ h\\|^2}{\\|h\\|^2},\\quad h = R g,

    evaluated in the factorised form, which avoids the cancellation of the quadratic form.
    ``h`` holds the eigenvectors of ``Kt`` as columns.
    """
    h = h / torch.linalg.vector_norm(h, dim=0, keepdim=True)
    Kt = fac.Kt.to(h.dtype)
    Rp = fac.R_perp.to(h.dtype)
    r1 = torch.linalg.vector_norm(Kt @ h - h * eigs, dim=0)
    r2 = torch.linalg.vector_norm(Rp @ h, dim=0)
    return torch.sqrt(r1**2 + r2**2)


def pseudospectrum_from_qr(fac: GalerkinQR, z: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Approximate pseudospectrum ``τ(z) = min_g res(z, g)`` on points ``z`` (ResDMD, Alg. 2 of [5]_).

    ``τ(z) = σ_min([Kt − zI; R⊥])``, a smallest singular value per grid point, batched.
    """
    n = fac.Kt.shape[0]
    Kt = fac.Kt.to(torch.complex128)
    Rp = fac.R_perp.to(torch.complex128)
    eye = torch.eye(n, dtype=torch.complex128, device=Kt.device)
    flat = z.reshape(-1).to(torch.complex128)
    out = []
    for i in range(0, flat.numel(), batch):
        zb = flat[i:i + batch]
        top = Kt.unsqueeze(0) - zb[:, None, None] * eye
        M = torch.cat([top, Rp.unsqueeze(0).expand(zb.numel(), -1, -1)], dim=1)
        out.append(torch.linalg.svdvals(M)[:, -1])
    return torch.cat(out).reshape(z.shape).real
