"""Exact DMD and time-delay (Hankel) DMD, scikit-learn shaped, in torch float64.

Rows are time: ``X`` has shape ``(n_time, n_features)`` (PyDMD is transposed: columns = time).

References
----------
.. [1] Schmid (2010). Dynamic mode decomposition of numerical and experimental data. JFM 656, 5–28.
.. [2] Tu, Rowley, Luchtenburg, Brunton, Kutz (2014). On dynamic mode decomposition: theory and
   applications. J. Comput. Dyn. 1(2), 391–421. doi:10.3934/jcd.2014.1.391
.. [3] Arbabi & Mezić (2017). Ergodic theory, dynamic mode decomposition, and computation of spectral
   properties of the Koopman operator. SIAM J. Appl. Dyn. Syst. 16(4). (Hankel DMD)
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from workbench.device import resolve_device
from workbench.koopman.linalg import (
    RankLike,
    galerkin_qr,
    lstsq_from_gram,
    residuals_from_qr,
    svd_direct,
    svd_from_gram,
    svd_randomized,
)
from workbench.validation import as_tensor, check_range

_METHODS = ("auto", "svd", "gram", "randomized")


def _order(eigs: torch.Tensor) -> torch.Tensor:
    """Deterministic order: descending modulus, then descending imaginary part."""
    e = eigs.detach().cpu().numpy()
    return torch.as_tensor(np.lexsort((-np.round(e.imag, 12), -np.round(np.abs(e), 12))), device=eigs.device)


def as_snapshots(x, name: str, device: torch.device, ndim: int | tuple[int, ...] = 2) -> torch.Tensor:
    """Snapshot matrix as a float64 tensor on ``device``, validated by :func:`as_tensor`."""
    return as_tensor(x, name, ndim=ndim, dtype=torch.float64, device=device)


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


def validate_pairs(X, y, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate ``X`` (and optional ``y``); return ``(X0, X1, x_first, X_or_None)`` as float64 tensors.

    ``y is None``: consecutive snapshots, ``X0 = X[:-1]``, ``X1 = X[1:]``; otherwise ``y[i]`` is the
    image of ``X[i]`` under one step of the dynamics.
    """
    X = as_snapshots(X, "X", device)
    if y is None:
        if X.shape[0] < 2:
            raise ValueError(f"X needs at least 2 snapshots (rows = time), got shape {tuple(X.shape)}")
        return X[:-1], X[1:], X[0], X
    y = as_snapshots(y, "y", device)
    if y.shape != X.shape:
        raise ValueError(f"y must have the same shape as X {tuple(X.shape)}, got {tuple(y.shape)}")
    return X, y, X[0], None


class KoopmanEstimator:
    """Shared behaviour of the DMD family: not-fitted guard, prediction, xarray view.

    A fitted estimator represents ``x_t ≈ Σ_k b_k λ_k^t φ_k`` (Tu et al. [2]_, eq. (2.12)), i.e.
    ``X̂ = (λ^t ⊙ b) @ modes_`` with ``modes_`` of shape ``(n_modes, n_features)``.
    """

    eigs_: np.ndarray
    modes_: np.ndarray
    amplitudes_: np.ndarray
    residuals_: np.ndarray | None

    def __init__(self, *, dt: float = 1.0, device: str | torch.device | None = "auto"):
        check_range(dt, "dt", 0.0, low_open=True)
        self.dt = float(dt)
        self.device = device

    # -- helpers ------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "eigs_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit(X) first")

    @property
    def _device(self) -> torch.device:
        return resolve_device(self.device)

    @property
    def omega_(self) -> np.ndarray:
        """Continuous-time eigenvalues ``ω = log(λ)/dt`` (Tu et al. [2]_, §2.4)."""
        self._check_fitted()
        return np.log(self.eigs_.astype(np.complex128)) / self.dt

    def _state_amplitudes(self, x0: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Least-squares amplitudes ``b`` with ``Φᵀ b ≈ x0`` (Tu et al. [2]_, eq. (2.13))."""
        Phi = self._modes.mT  # (feature, mode)
        x = as_tensor(x0, "x0", ndim=1, dtype=torch.float64, device=Phi.device)
        if x.shape[0] != Phi.shape[0]:
            raise ValueError(f"x0 must have {Phi.shape[0]} entries, got {x.shape[0]}")
        return torch.linalg.lstsq(Phi, x.to(Phi.dtype).unsqueeze(1)).solution[:, 0]

    def _evolve(self, b: torch.Tensor, t: torch.Tensor) -> np.ndarray:
        lam = self._eigs
        vand = lam.unsqueeze(0) ** t.to(lam.dtype).unsqueeze(1)  # (time, mode)
        return ((vand * b) @ self._modes).real.cpu().numpy()

    # -- public API ---------------------------------------------------------------------------
    def predict(self, n_steps: int, x0: np.ndarray | torch.Tensor | None = None) -> np.ndarray:
        """States ``1 … n_steps`` steps after ``x0`` (default: the last fitted snapshot).

        Returns ``(n_steps, n_features)``. Amplitudes are re-fitted at ``x0``, so errors of
        unstable modes do not compound from the start of the data.
        """
        self._check_fitted()
        if not isinstance(n_steps, int) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
        b = self._state_amplitudes(self._last if x0 is None else x0)
        t = torch.arange(1, n_steps + 1, device=b.device)
        return self._evolve(b, t)

    def reconstruct(self) -> np.ndarray:
        """The model's reconstruction of the fitted data from the first snapshot, ``(n_time, n_features)``."""
        self._check_fitted()
        t = torch.arange(self._n_time, device=self._eigs.device)
        return self._evolve(self._amplitudes, t)

    def to_dataset(self) -> xr.Dataset:
        """Eigenvalues, amplitudes, residuals (dim ``eig``) and modes (dims ``eig``, ``feature``)."""
        self._check_fitted()
        lam, om = self.eigs_, self.omega_
        data = {
            "eig_real": ("eig", lam.real), "eig_imag": ("eig", lam.imag), "modulus": ("eig", np.abs(lam)),
            "growth_rate": ("eig", om.real), "frequency": ("eig", om.imag / (2 * np.pi)),
            "amplitude": ("eig", np.abs(self.amplitudes_)),
            "mode_real": (("eig", "feature"), self.modes_.real), "mode_imag": (("eig", "feature"), self.modes_.imag),
        }
        if self.residuals_ is not None:
            data["residual"] = ("eig", self.residuals_)
        ds = xr.Dataset(data, coords={"eig": np.arange(lam.size), "feature": np.arange(self.modes_.shape[1])})
        ds.attrs.update(estimator=type(self).__name__, dt=self.dt, rank=int(lam.size),
                        reference="Tu et al. 2014 doi:10.3934/jcd.2014.1.391; Colbrook & Townsend 2023 (residuals)")
        return ds

    def _publish(self, eigs: torch.Tensor, modes: torch.Tensor, amplitudes: torch.Tensor,
                 residuals: torch.Tensor | None, last: torch.Tensor, n_time: int) -> None:
        order = _order(eigs)
        self._eigs, self._modes, self._amplitudes = eigs[order], modes[order], amplitudes[order]
        self._last, self._n_time = last, n_time
        self.eigs_ = self._eigs.cpu().numpy()
        self.modes_ = self._modes.cpu().numpy()
        self.amplitudes_ = self._amplitudes.cpu().numpy()
        self.residuals_ = None if residuals is None else residuals[order].cpu().numpy()


class DMD(KoopmanEstimator):
    """Exact dynamic mode decomposition (Schmid [1]_; Tu et al. [2]_, Algorithm 2).

    With ``X0ᵀ ≈ U Σ Vᵀ`` (rank r), ``Ã = Uᵀ X1ᵀ V Σ⁻¹``, ``Ã W = W Λ`` and exact modes
    ``Φ = X1ᵀ V Σ⁻¹ W``. ``residuals_`` are ResDMD residuals of each eigenpair in the POD
    coordinates ``ψ(x) = Uᵀx`` (zero when ``rank == n_time − 1``; see :class:`ResDMD`).

    Parameters
    ----------
    rank : ``None`` (numerical rank), int, float energy fraction in (0, 1] of ``Σσ²``, or
        ``"optimal"`` (Gavish–Donoho hard threshold). Set it explicitly when comparing methods.
    dt : time between snapshots, used for ``omega_``.
    method : ``"svd"`` (thin SVD), ``"gram"`` (method of snapshots: Gram matrix of the snapshots,
        fast for features ≫ snapshots), ``"randomized"`` (Halko et al., int rank), or ``"auto"``
        (gram when ``n_features > 2·n_time``, else svd).
    exact : exact modes ``X1ᵀVΣ⁻¹W`` (True) or projected modes ``UW`` (False).
    n_power_iter, n_oversamples, seed : randomized-SVD settings.
    device : ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.

    Attributes
    ----------
    eigs_ : (rank,) complex; modes_ : (rank, n_features) complex; amplitudes_ : (rank,) complex;
    residuals_ : (rank,) float; singular_values_ : (rank,); omega_ : log(eigs_)/dt.
    """

    def __init__(self, rank: RankLike = None, *, dt: float = 1.0, method: str = "auto", exact: bool = True,
                 n_power_iter: int = 1, n_oversamples: int = 10, seed: int = 0,
                 device: str | torch.device | None = "auto"):
        super().__init__(dt=dt, device=device)
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self.rank, self.method, self.exact = rank, method, exact
        self.n_power_iter, self.n_oversamples, self.seed = n_power_iter, n_oversamples, seed

    def fit(self, X, y=None) -> DMD:
        """Fit on snapshots ``X`` (rows = time) or on pairs ``(X[i], y[i])``; returns ``self``."""
        X0, X1, first, full = validate_pairs(X, y, self._device)
        self._fit_pairs(X0, X1, first, n_time=X0.shape[0] + (1 if y is None else 0), consecutive=full)
        return self

    def _fit_pairs(self, X0: torch.Tensor, X1: torch.Tensor, first: torch.Tensor, n_time: int,
                   consecutive: torch.Tensor | None = None) -> None:
        m, n = X0.shape
        method = self.method
        if method == "auto":
            method = "gram" if n > 2 * m else "svd"
        # 1. truncated SVD of the snapshot matrix, and the projected images  Ψy = X1 U  (time, r)
        if method == "gram":
            if consecutive is not None:  # one (m+1)² Gram holds both X0X0ᵀ and X0X1ᵀ
                Z = gram(consecutive)
                g0, cross = Z[:-1, :-1], Z[:-1, 1:]
            else:
                g0, cross = gram(X0), X0 @ X1.mT
            svd = svd_from_gram(g0, (m, n), self.rank)
            s_inv_V = svd.V / svd.s  # V Σ⁻¹ : (time, r)
            psi_y = cross.mT @ s_inv_V  # X1 U = X1 X0ᵀ V Σ⁻¹
        else:
            if method == "svd":
                svd = svd_direct(X0, self.rank)
            else:
                gen = torch.Generator().manual_seed(self.seed)
                svd = svd_randomized(X0, self.rank, n_oversamples=self.n_oversamples,
                                     n_power_iter=self.n_power_iter, generator=gen)
            s_inv_V = svd.V / svd.s
            psi_y = X1 @ svd.U
        self.singular_values_ = svd.s.cpu().numpy()
        # 2. reduced operator Ã = Uᵀ X1ᵀ V Σ⁻¹ = (X1 U)ᵀ V Σ⁻¹ and its eigendecomposition
        atilde = psi_y.mT @ s_inv_V
        eigs, W = torch.linalg.eig(atilde)
        # 3. modes: exact Φ = X1ᵀ V Σ⁻¹ W, or projected U W (U = X0ᵀ V Σ⁻¹ on the Gram route)
        if self.exact:
            Phi = blas_matmul(s_inv_V.mT, X1).mT.to(W.dtype) @ W  # no transposed copy of X1
        else:
            U = svd.U if svd.U is not None else blas_matmul(s_inv_V.mT, X0).mT
            Phi = U.to(W.dtype) @ W
        self._modes = Phi.mT
        amplitudes = None
        if method == "gram" and consecutive is not None and self.exact:  # b from the Gram blocks X1X1ᵀ, X1x0
            amplitudes = lstsq_from_gram(s_inv_V.to(W.dtype) @ W, Z[1:, 1:], Z[1:, 0])
        if amplitudes is None:
            amplitudes = self._state_amplitudes(first)
        # 4. residuals in POD coordinates ψ(x) = Uᵀx: Ψx = V Σ, eigenvectors g = rows of W⁻¹ (K = Ãᵀ)
        fac = galerkin_qr(svd.V * svd.s, psi_y)
        g = torch.linalg.inv(W).mT
        residuals = residuals_from_qr(fac, eigs, fac.R.to(g.dtype) @ g)
        self.rank_ = int(svd.s.numel())
        self._publish(eigs, Phi.mT, amplitudes, residuals, X1[-1], n_time)


def hankel(X: torch.Tensor, delays: int) -> torch.Tensor:
    """Time-delay embedding: row t is ``[x_t, x_{t+1}, …, x_{t+d−1}]``, shape ``(n_time−d+1, d·n_features)``."""
    return X.unfold(0, delays, 1).permute(0, 2, 1).reshape(X.shape[0] - delays + 1, -1)


class HankelDMD(KoopmanEstimator):
    """DMD of the time-delay embedded data (Arbabi & Mezić [3]_; Brunton et al. 2017 HAVOK).

    Delay coordinates turn a scalar or low-dimensional signal into a state on which the Koopman
    operator acts linearly: a sum of K damped sinusoids needs ``delays ≥ 2K``. ``modes_`` are the
    first blocks of the delay modes (the part describing ``x_t`` in the delay row ``t``).

    Parameters
    ----------
    delays : number of delays d ≥ 1 (d = 1 is plain DMD). Other parameters as :class:`DMD`.
    """

    def __init__(self, delays: int = 2, rank: RankLike = None, *, dt: float = 1.0, method: str = "auto",
                 exact: bool = True, device: str | torch.device | None = "auto"):
        super().__init__(dt=dt, device=device)
        if not isinstance(delays, int) or isinstance(delays, bool) or delays < 1:
            raise ValueError(f"delays must be a positive int, got {delays!r}")
        self.delays, self.rank, self.method, self.exact = delays, rank, method, exact

    def fit(self, X, y=None) -> HankelDMD:
        """Fit on snapshots ``X`` (rows = time); ``y`` is not supported (delays need a trajectory)."""
        if y is not None:
            raise ValueError("HankelDMD needs one trajectory X; pairs (X, y) are not supported")
        X = as_snapshots(X, "X", self._device, ndim=(1, 2))
        X = X.reshape(-1, 1) if X.ndim == 1 else X
        if X.shape[0] < self.delays + 1:
            raise ValueError(f"X needs at least delays + 1 = {self.delays + 1} snapshots, got {X.shape[0]}")
        n = X.shape[1]
        self._n_features = n
        H = hankel(X, self.delays)
        self.dmd_ = DMD(self.rank, dt=self.dt, method=self.method, exact=self.exact, device=self.device).fit(H)
        inner = self.dmd_
        self._full_modes = inner._modes
        amp = inner._amplitudes
        self.rank_ = inner.rank_
        # the first block of delay row t is x_t, so the first block of each mode describes x_t
        self._publish(inner._eigs, inner._modes[:, :n], amp, torch.as_tensor(inner.residuals_), X[-1], X.shape[0])
        self._last_h = H[-1]
        return self

    def predict(self, n_steps: int, x0: np.ndarray | torch.Tensor | None = None) -> np.ndarray:
        """States 1 … n_steps after the last delay vector ``x0`` (length ``delays · n_features``)."""
        self._check_fitted()
        inner = self.dmd_
        h = self._last_h if x0 is None else x0
        return inner.predict(n_steps, h)[:, -self._n_features:]
