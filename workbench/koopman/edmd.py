"""Extended DMD (dictionary of observables) and Residual DMD (eigenpair residuals, pseudospectra).

References
----------
.. [1] Williams, Kevrekidis, Rowley (2015). A data-driven approximation of the Koopman operator:
   extending dynamic mode decomposition. J. Nonlinear Sci. 25. doi:10.1007/s00332-015-9258-5
.. [2] Colbrook & Townsend (2023). Rigorous data-driven computation of spectral properties of Koopman
   operators for dynamical systems. Comm. Pure Appl. Math. doi:10.1002/cpa.22125
.. [3] Colbrook, Mezić, Stepanenko (2024). Limits and powers of Koopman learning. arXiv:2409.05467
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from workbench.koopman.dictionaries import Delays, Dictionary, make_dictionary
from workbench.koopman.dmd import KoopmanEstimator, hankel
from workbench.koopman.linalg import (
    RankLike,
    eig_order,
    galerkin_qr,
    pseudospectrum_from_qr,
    residuals_from_qr,
    svd_direct,
)
from workbench.koopman.snapshots import as_snapshots, unwrap, validate_pairs
from workbench.validation import as_tensor, check_range


class EDMD(KoopmanEstimator):
    """Extended DMD: Galerkin approximation of the Koopman operator on a dictionary (Williams et al. [1]_).

    With ``Ψx = ψ(X0)``, ``Ψy = ψ(X1)`` (rows = samples) and quadrature weights W (uniform 1/M),
    ``G = Ψxᴴ W Ψx``, ``A = Ψxᴴ W Ψy`` and ``K = G⁺ A`` ([1]_, eq. (10)); eigenpairs ``K g = λ g``
    give eigenfunctions ``φ(x) = ψ(x) g``. Solved in the stable QR form of Colbrook & Townsend [2]_.
    ``rank`` truncates the dictionary to its leading principal components first (regularisation
    for ill-conditioned dictionaries such as many RBFs).

    Attributes
    ----------
    eigs_ : (r,) complex; modes_ : (r, n_features) Koopman modes with ``x ≈ Σ φ_k(x) modes_[k]``;
    amplitudes_ : eigenfunction values at the first snapshot; K_ : (r, r) Koopman matrix;
    n_functions_ : dictionary size before truncation.
    """

    def __init__(self, dictionary: str | Dictionary | None = "identity", rank: RankLike = None, *,
                 dt: float | None = None, device: str | torch.device | None = "auto"):
        super().__init__(dt=dt, device=device)
        self.dictionary, self.rank = dictionary, rank

    def fit(self, X, y=None, weights=None) -> EDMD:
        """Fit on a trajectory ``X`` (rows = time; array, DataArray or Run) or on pairs ``(X[i], y[i])``.

        ``weights`` : optional positive quadrature weights, one per pair (default uniform). Returns ``self``.
        """
        dev = self._device
        X, y = self._read(X), None if y is None else unwrap(y)[0]
        dic = make_dictionary(self.dictionary)
        if isinstance(dic, Delays) and dic.delays > 1:
            if y is not None:
                raise ValueError("a Delays dictionary needs one trajectory X; pairs (X, y) are not supported")
            Xt = as_snapshots(X, "X", dev)
            if Xt.shape[0] < dic.delays + 1:
                raise ValueError(f"X needs at least delays + 1 = {dic.delays + 1} snapshots, got {Xt.shape[0]}")
            X = hankel(Xt, dic.delays)
        X0, X1, first, _ = validate_pairs(X, y, dev)
        w = None
        if weights is not None:
            w = as_tensor(weights, "weights", ndim=1, dtype=torch.float64, device=dev)
            if w.shape[0] != X0.shape[0] or bool((w <= 0).any()):
                raise ValueError(f"weights must be {X0.shape[0]} positive numbers, got shape {tuple(w.shape)}")
        self.dictionary_ = dic.fit(X0)
        psi_x, psi_y = dic(X0), dic(X1)
        self.n_functions_ = psi_x.shape[1]
        # 1. principal-component truncation of the dictionary: ψ → ψ P with P the top right singular vectors
        svd = svd_direct(psi_x if w is None else psi_x * w.sqrt()[:, None], self.rank)
        self._P = svd.U  # (function, r): right singular vectors of Ψx
        px, py = psi_x @ self._P, psi_y @ self._P
        # 2. stable Galerkin factorisation, eigenpairs of Kt = R K R⁻¹, then g = R⁻¹ h
        self._fac = galerkin_qr(px, py, w)
        eigs, h = torch.linalg.eig(self._fac.Kt)
        order = eig_order(eigs)
        eigs, h = eigs[order], h[:, order]
        R = self._fac.R.to(h.dtype)
        g = torch.linalg.solve_triangular(R, h, upper=True)
        self._g = g
        self.K_ = torch.linalg.solve_triangular(self._fac.R, self._fac.Kt @ self._fac.R, upper=True).cpu().numpy()
        # 3. Koopman modes: X0 ≈ Φ(X0) modes, Φ = Ψx P g (eigenfunction values on the data)
        phi = px.to(g.dtype) @ g
        self._modes = torch.linalg.lstsq(phi, X0.to(g.dtype)).solution
        amplitudes = self._state_amplitudes(first)
        self.rank_ = int(eigs.numel())
        self._publish(eigs, self._modes, amplitudes, self._residuals(eigs, h), X1[-1], X0.shape[0] + 1)
        return self

    def _residuals(self, eigs: torch.Tensor, h: torch.Tensor) -> torch.Tensor | None:
        return None

    def eigenfunctions(self, X) -> np.ndarray:
        """Eigenfunction values ``φ_k(x) = ψ(x) g_k`` at states ``X``, shape ``(n_samples, r)``."""
        self._check_fitted()
        Xt = as_tensor(X, "X", ndim=2, dtype=torch.float64, device=self._P.device)
        return self._phi(Xt).cpu().numpy()

    def _phi(self, Xt: torch.Tensor) -> torch.Tensor:
        return (self.dictionary_(Xt) @ self._P).to(self._g.dtype) @ self._g

    def _state_amplitudes(self, x0) -> torch.Tensor:
        """Amplitudes at ``x0`` are the eigenfunction values ``φ_k(x0)``."""
        x = as_tensor(x0, "x0", ndim=1, dtype=torch.float64, device=self._P.device)
        return self._phi(x[None])[0]


class ResDMD(EDMD):
    """Residual DMD: EDMD plus a residual certificate for every eigenpair (Colbrook & Townsend [2]_).

    .. math:: \\mathrm{res}(λ, g)^2 = \\frac{g^*(L − λA^* − \\bar λ A + |λ|^2 G) g}{g^* G g},
              \\quad L = Ψ_y^* W Ψ_y,

    an upper bound (as M → ∞) on how far λ is from the spectrum of the Koopman operator
    ([2]_, Thm. 4.1). Eigenvalues with residual above ``tol`` are flagged in ``spurious_``.
    ``pseudospectrum`` evaluates ``τ(z) = min_g res(z, g)`` on a grid ([2]_, Alg. 2); its
    ε-level sets enclose the ε-pseudospectrum.

    Parameters
    ----------
    tol : residual above which an eigenvalue counts as spurious. Other parameters as :class:`EDMD`.
    """

    def __init__(self, dictionary: str | Dictionary | None = "identity", rank: RankLike = None, *,
                 tol: float = 0.1, dt: float | None = None, device: str | torch.device | None = "auto"):
        super().__init__(dictionary, rank, dt=dt, device=device)
        check_range(tol, "tol", 0.0, low_open=True)
        self.tol = tol

    def _residuals(self, eigs: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return residuals_from_qr(self._fac, eigs, h)

    @property
    def spurious_(self) -> np.ndarray:
        """Boolean mask: residual > ``tol``."""
        self._check_fitted()
        return self.residuals_ > self.tol

    def pseudospectrum(self, real, imag) -> xr.DataArray:
        """``τ(z)`` on the grid ``z = real + i·imag`` → DataArray with dims ``(imag, real)``."""
        self._check_fitted()
        re = as_tensor(real, "real", ndim=1, dtype=torch.float64)
        im = as_tensor(imag, "imag", ndim=1, dtype=torch.float64)
        z = torch.complex(re[None, :].expand(im.numel(), -1), im[:, None].expand(-1, re.numel()))
        tau = pseudospectrum_from_qr(self._fac, z.to(self._fac.Kt.device)).cpu().numpy()
        return xr.DataArray(tau, dims=("imag", "real"), coords={"imag": im.numpy(), "real": re.numpy()},
                            name="pseudospectrum",
                            attrs={"method": "ResDMD Alg. 2, Colbrook & Townsend 2023 doi:10.1002/cpa.22125"})
