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

from typing import Any

import numpy as np
import torch
import xarray as xr

from workbench.device import resolve_device
from workbench.koopman.core import ReducedDMD, gram_dmd, reduced_dmd
from workbench.koopman.linalg import (
    RankLike,
    blas_matmul,
    eig_order,
    gram,
    svd_direct,
    svd_randomized,
)
from workbench.koopman.snapshots import Frame, as_snapshots, unwrap, validate_pairs
from workbench.validation import as_tensor, check_range

_METHODS = ("auto", "svd", "gram", "randomized")


class KoopmanEstimator:
    """Shared behaviour of the DMD family: input frames, not-fitted guard, prediction, xarray view.

    A fitted estimator represents ``x_t ≈ Σ_k b_k λ_k^t φ_k`` (Tu et al. [2]_, eq. (2.12)), i.e.
    ``X̂ = (λ^t ⊙ b) @ modes_`` with ``modes_`` of shape ``(n_modes, n_features)``.

    ``fit`` takes an array ``(n_time, n_features)``, a DataArray with a ``step`` (or ``time``) dim
    — e.g. ``Run.trajectory()`` with dims (``step``, ``param``) — or a Run. A DataArray's feature
    coordinate labels the modes in :meth:`to_dataset`, and with ``dt=None`` its step spacing is
    the time between snapshots (``dt_``).
    """

    eigs_: np.ndarray
    modes_: np.ndarray
    amplitudes_: np.ndarray
    residuals_: np.ndarray | None
    dt_: float

    def __init__(self, *, dt: float | None = None, device: str | torch.device | None = "auto"):
        if dt is not None:
            check_range(dt, "dt", 0.0, low_open=True)
        self.dt = None if dt is None else float(dt)
        self.device = device

    # -- helpers ------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "eigs_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit(X) first")

    @property
    def _device(self) -> torch.device:
        return resolve_device(self.device)

    def _read(self, X: Any) -> Any:
        """Values of ``X`` (rows = time); records its :class:`Frame` and the time step ``dt_``."""
        values, frame = unwrap(X)
        self._frame = frame or Frame()
        spacing = None if self.dt is not None else self._frame.spacing()
        self.dt_ = self.dt if self.dt is not None else (spacing or 1.0)
        return values

    @property
    def omega_(self) -> np.ndarray:
        """Continuous-time eigenvalues ``ω = log(λ)/dt_`` (Tu et al. [2]_, §2.4)."""
        self._check_fitted()
        return np.log(self.eigs_.astype(np.complex128)) / self.dt_

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
        """Eigenvalues, amplitudes, residuals (dim ``eig``) and modes (dims ``eig`` and the feature dim).

        The feature dim is the fitted DataArray's (``param`` for a trajectory, with its coordinate)
        or ``feature``; attrs hold ``dt`` and, for labelled input, the first and last time.
        """
        self._check_fitted()
        lam, om, frame = self.eigs_, self.omega_, self._frame
        n_feat = self.modes_.shape[1]
        labelled = frame.features is not None and len(frame.features) == n_feat
        fdim = frame.feature_dim if labelled else "feature"
        data = {
            "eig_real": ("eig", lam.real), "eig_imag": ("eig", lam.imag), "modulus": ("eig", np.abs(lam)),
            "growth_rate": ("eig", om.real), "frequency": ("eig", om.imag / (2 * np.pi)),
            "amplitude": ("eig", np.abs(self.amplitudes_)),
            "mode_real": (("eig", fdim), self.modes_.real), "mode_imag": (("eig", fdim), self.modes_.imag),
        }
        if self.residuals_ is not None:
            data["residual"] = ("eig", self.residuals_)
        coords = {"eig": np.arange(lam.size), fdim: frame.features if labelled else np.arange(n_feat)}
        ds = xr.Dataset(data, coords=coords)
        ds.attrs.update(estimator=type(self).__name__, dt=self.dt_, rank=int(lam.size),
                        reference="Tu et al. 2014 doi:10.3934/jcd.2014.1.391; Colbrook & Townsend 2023 (residuals)")
        if frame.times is not None and len(frame.times):
            ds.attrs.update({f"{frame.time_dim}_first": frame.times[0].item(),
                             f"{frame.time_dim}_last": frame.times[-1].item()})
        return ds

    def _publish(self, eigs: torch.Tensor, modes: torch.Tensor, amplitudes: torch.Tensor,
                 residuals: torch.Tensor | None, last: torch.Tensor, n_time: int) -> None:
        order = eig_order(eigs)
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
    dt : time between snapshots, used for ``omega_``; ``None``: the step spacing of a DataArray
        or Run, else 1.
    method : ``"svd"`` (thin SVD), ``"gram"`` (method of snapshots: Gram matrix of the snapshots,
        fast for features ≫ snapshots), ``"randomized"`` (Halko et al., int rank), or ``"auto"``
        (gram when ``n_features > 2·n_time``, else svd).
    exact : exact modes ``X1ᵀVΣ⁻¹W`` (True) or projected modes ``UW`` (False).
    n_power_iter, n_oversamples, seed : randomized-SVD settings.
    device : ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.

    Attributes
    ----------
    eigs_ : (rank,) complex; modes_ : (rank, n_features) complex; amplitudes_ : (rank,) complex;
    residuals_ : (rank,) float; singular_values_ : (rank,); dt_ : time step; omega_ : log(eigs_)/dt_.
    """

    def __init__(self, rank: RankLike = None, *, dt: float | None = None, method: str = "auto", exact: bool = True,
                 n_power_iter: int = 1, n_oversamples: int = 10, seed: int = 0,
                 device: str | torch.device | None = "auto"):
        super().__init__(dt=dt, device=device)
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self.rank, self.method, self.exact = rank, method, exact
        self.n_power_iter, self.n_oversamples, self.seed = n_power_iter, n_oversamples, seed

    def fit(self, X, y=None) -> DMD:
        """Fit on snapshots ``X`` (rows = time; array, DataArray or Run) or on pairs ``(X[i], y[i])``.

        Returns ``self``.
        """
        X0, X1, first, full = validate_pairs(self._read(X), None if y is None else unwrap(y)[0], self._device)
        self._fit_pairs(X0, X1, first, n_time=X0.shape[0] + (1 if y is None else 0), consecutive=full)
        return self

    def _reduce(self, X0: torch.Tensor, X1: torch.Tensor, consecutive: torch.Tensor | None
                ) -> tuple[ReducedDMD, torch.Tensor | None]:
        """Step 1–2 of exact DMD by the chosen SVD route; also the snapshot Gram ``Z`` when formed."""
        m, n = X0.shape
        method = self.method
        if method == "auto":
            method = "gram" if n > 2 * m else "svd"
        if method == "gram":
            if consecutive is not None:  # one (m+1)² Gram holds both X0X0ᵀ and X0X1ᵀ
                Z = gram(consecutive)
                return gram_dmd(Z[:-1, :-1], Z[:-1, 1:], self.rank, n), Z
            return gram_dmd(gram(X0), X0 @ X1.mT, self.rank, n), None
        if method == "svd":
            svd = svd_direct(X0, self.rank)
        else:
            gen = torch.Generator().manual_seed(self.seed)
            svd = svd_randomized(X0, self.rank, n_oversamples=self.n_oversamples,
                                 n_power_iter=self.n_power_iter, generator=gen)
        return reduced_dmd(svd, X1 @ svd.U), None

    def _fit_pairs(self, X0: torch.Tensor, X1: torch.Tensor, first: torch.Tensor, n_time: int,
                   consecutive: torch.Tensor | None = None) -> None:
        # 1–2. truncated SVD of the snapshots, reduced operator Ã, its eigenpairs and residuals
        red, Z = self._reduce(X0, X1, consecutive)
        svd, W = red.svd, red.W
        self.singular_values_ = svd.s.cpu().numpy()
        # 3. modes: exact Φ = X1ᵀ V Σ⁻¹ W, or projected U W (U = X0ᵀ V Σ⁻¹ on the Gram route)
        if self.exact:
            Phi = blas_matmul(red.s_inv_V.mT, X1).mT.to(W.dtype) @ W  # no transposed copy of X1
        else:
            U = svd.U if svd.U is not None else blas_matmul(red.s_inv_V.mT, X0).mT
            Phi = U.to(W.dtype) @ W
        self._modes = Phi.mT
        amplitudes = None
        if Z is not None and self.exact:  # b from the Gram blocks X1X1ᵀ, X1x0
            amplitudes = red.amplitudes_from_gram(Z[1:, 1:], Z[1:, 0])
        if amplitudes is None:
            amplitudes = self._state_amplitudes(first)
        self.rank_ = red.rank
        self._publish(red.eigs, Phi.mT, amplitudes, red.residuals, X1[-1], n_time)


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

    def __init__(self, delays: int = 2, rank: RankLike = None, *, dt: float | None = None, method: str = "auto",
                 exact: bool = True, device: str | torch.device | None = "auto"):
        super().__init__(dt=dt, device=device)
        if not isinstance(delays, int) or isinstance(delays, bool) or delays < 1:
            raise ValueError(f"delays must be a positive int, got {delays!r}")
        self.delays, self.rank, self.method, self.exact = delays, rank, method, exact

    def fit(self, X, y=None) -> HankelDMD:
        """Fit on snapshots ``X`` (rows = time); ``y`` is not supported (delays need a trajectory)."""
        if y is not None:
            raise ValueError("HankelDMD needs one trajectory X; pairs (X, y) are not supported")
        X = as_snapshots(self._read(X), "X", self._device, ndim=(1, 2))
        X = X.reshape(-1, 1) if X.ndim == 1 else X
        if X.shape[0] < self.delays + 1:
            raise ValueError(f"X needs at least delays + 1 = {self.delays + 1} snapshots, got {X.shape[0]}")
        n = X.shape[1]
        self._n_features = n
        H = hankel(X, self.delays)
        inner = DMD(self.rank, dt=self.dt_, method=self.method, exact=self.exact, device=self.device).fit(H)
        self.dmd_, self.rank_ = inner, inner.rank_
        dev = H.device
        modes = torch.as_tensor(inner.modes_, device=dev)
        # the first block of delay row t is x_t, so the first block of each mode describes x_t
        self._publish(torch.as_tensor(inner.eigs_, device=dev), modes[:, :n],
                      torch.as_tensor(inner.amplitudes_, device=dev), torch.as_tensor(inner.residuals_), X[-1],
                      X.shape[0])
        self._last_h = H[-1]
        return self

    def predict(self, n_steps: int, x0: np.ndarray | torch.Tensor | None = None) -> np.ndarray:
        """States 1 … n_steps after the last delay vector ``x0`` (length ``delays · n_features``)."""
        self._check_fitted()
        inner = self.dmd_
        h = self._last_h if x0 is None else x0
        return inner.predict(n_steps, h)[:, -self._n_features:]
