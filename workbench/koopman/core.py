"""The one exact-DMD core: reduced operator, eigenpairs and residuals in POD coordinates.

Every DMD in the lens goes through :func:`reduced_dmd`: :class:`~workbench.koopman.DMD` with any
SVD route, the windows of :func:`~workbench.koopman.trajectory_spectrum` and of
:func:`~workbench.koopman.piecewise_dmd`. :func:`gram_dmd` is the method-of-snapshots entry point:
it needs only the Gram blocks ``X0X0ᵀ`` and ``X0X1ᵀ`` (``time × time``), never the features.

References
----------
.. [1] Tu, Rowley, Luchtenburg, Brunton, Kutz (2014). On dynamic mode decomposition: theory and
   applications. J. Comput. Dyn. 1(2), 391–421. doi:10.3934/jcd.2014.1.391
.. [2] Colbrook & Townsend (2023). Rigorous data-driven computation of spectral properties of Koopman
   operators for dynamical systems. CPAM. doi:10.1002/cpa.22125
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.koopman.linalg import (
    RankLike,
    TruncatedSVD,
    eig_order,
    galerkin_qr,
    lstsq_from_gram,
    residuals_from_qr,
    svd_from_gram,
)


@dataclass
class ReducedDMD:
    """Exact DMD of snapshot pairs ``X1 ≈ X0 Aᵀ`` held in POD coordinates (Tu et al. [1]_, Alg. 2).

    With ``X0ᵀ ≈ U Σ Vᵀ`` (rank r) the reduced operator is ``Ã = Uᵀ X1ᵀ V Σ⁻¹``, ``Ã W = W Λ``, and
    the exact modes are ``Φ = X1ᵀ V Σ⁻¹ W = X1ᵀ C`` with ``C = coef``. Eigenpairs are sorted by
    :func:`~workbench.koopman.linalg.eig_order`.
    """

    svd: TruncatedSVD
    eigs: torch.Tensor  # (r,) complex
    W: torch.Tensor  # (r, r) complex, eigenvectors of Ã as columns
    residuals: torch.Tensor  # (r,) ResDMD residual of each eigenpair

    @property
    def rank(self) -> int:
        return int(self.eigs.numel())

    @property
    def s_inv_V(self) -> torch.Tensor:
        """``V Σ⁻¹`` : (time, r)."""
        return self.svd.V / self.svd.s

    @property
    def coef(self) -> torch.Tensor:
        """``C = V Σ⁻¹ W`` : (time, r) complex; exact modes are ``Φ = X1ᵀ C``."""
        return self.s_inv_V.to(self.W.dtype) @ self.W

    def amplitudes_from_gram(self, gram_11: torch.Tensor, gram_1x: torch.Tensor,
                             max_cond: float | None = 1e8) -> torch.Tensor | None:
        """Amplitudes ``b`` of ``Φ b ≈ x`` from ``X1X1ᵀ`` and ``X1x`` (Tu et al. [1]_, eq. (2.13)).

        ``None`` when ``cond(ΦᴴΦ) > max_cond`` (see :func:`~workbench.koopman.linalg.lstsq_from_gram`).
        """
        return lstsq_from_gram(self.coef, gram_11, gram_1x, max_cond)


def reduced_dmd(svd: TruncatedSVD, psi_y: torch.Tensor) -> ReducedDMD:
    """Eigenpairs and residuals of ``Ã = Ψyᵀ V Σ⁻¹`` given the truncated SVD and ``Ψy = X1 U``.

    Residuals are those of ResDMD in the POD coordinates ``ψ(x) = Uᵀx`` with ``Ψx = VΣ`` and left
    eigenvectors ``g`` the rows of ``W⁻¹`` (``K = Ãᵀ``; Colbrook & Townsend [2]_, eq. (4.6)); they
    vanish when ``rank = n_time − 1``.
    """
    s_inv_V = svd.V / svd.s
    eigs, W = torch.linalg.eig(psi_y.mT @ s_inv_V)
    fac = galerkin_qr(svd.V * svd.s, psi_y)
    g = torch.linalg.inv(W).mT
    residuals = residuals_from_qr(fac, eigs, fac.R.to(g.dtype) @ g)
    order = eig_order(eigs)
    return ReducedDMD(svd, eigs[order], W[:, order], residuals[order])


def gram_dmd(gram_00: torch.Tensor, gram_01: torch.Tensor, rank: RankLike, n_features: int, *,
             clip: bool = False) -> ReducedDMD:
    """Exact DMD by the method of snapshots (Tu et al. [1]_, §2.2) from ``X0X0ᵀ`` and ``X0X1ᵀ``.

    ``X0X0ᵀ = V Σ² Vᵀ`` gives the SVD without ``U``, and ``Ψy = X1 U = X1X0ᵀ V Σ⁻¹``.
    ``n_features`` is only used by rank rules (``"optimal"``) and messages; ``clip`` lowers an int
    ``rank`` to the numerical rank instead of raising (rank 0 gives an empty result).
    """
    svd = svd_from_gram(gram_00, (gram_00.shape[0], n_features), rank, clip=clip)
    return reduced_dmd(svd, gram_01.mT @ (svd.V / svd.s))
