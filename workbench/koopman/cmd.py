"""Correlation Mode Decomposition (CMD) of a training trajectory, offline and online.

Parameters of a network move in a few synchronised groups. CMD (Brokman et al. [1]_) samples
parameter trajectories, clusters them by the absolute correlation of their time courses
(complete linkage) into M *modes*, picks one reference trajectory ``r_m(t)`` per mode, assigns every
parameter to the reference it correlates with most, and models it as

.. math:: w_i(t) \\approx a_i\\, r_{m(i)}(t) + b_i ,

with ``(a_i, b_i)`` the least-squares fit over the recorded steps. The whole trajectory is then
stored as ``M·T + 2N`` numbers instead of ``N·T``. The online variant ([1]_, online CMD) fixes the
modes after a warm-up and updates ``(a, b)`` as checkpoints arrive, from running sums — the exact
least-squares solution over all steps seen, at the cost of one pass over each new checkpoint.

All passes over the parameters read the trajectory in chunks (a lazy ``Run.trajectory()`` is never
loaded whole); per-parameter results (mode, a, b) are ``N``-vectors, like one checkpoint.

References
----------
.. [1] Brokman, Betser, Turjeman, Berkov, Cohen, Gilboa (2024). Enhancing neural training via a
   correlated dynamics model. ICLR. arXiv:2312.13247; code: github.com/rbetser/CMD
"""
from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from workbench.koopman.snapshots import as_trajectory, param_chunks

REFERENCES = ("parameter", "mean")
_PAPER = "Brokman et al. 2024 (ICLR) arXiv:2312.13247"


def abs_correlation(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``|corr(A[:, i], B[:, j])|`` over time (rows) for every column pair; 0 where a column is constant."""
    Ac, Bc = A - A.mean(0), B - B.mean(0)
    den = np.outer(np.linalg.norm(Ac, axis=0), np.linalg.norm(Bc, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.abs(Ac.T @ Bc) / den, 0.0)


def correlation_clusters(S: np.ndarray, n_modes: int) -> np.ndarray:
    """Mode label of each column of ``S`` (time, sample): complete linkage on ``1 − |corr|``.

    Labels are ``0 … M−1`` by decreasing cluster size; ``M ≤ n_modes`` (fewer when the samples
    hold fewer distinct groups). The reference code clusters the rows of ``|corr|`` by their
    Euclidean distance instead; both separate well-correlated groups.
    """
    D = np.clip(1.0 - abs_correlation(S, S), 0.0, None)
    np.fill_diagonal(D, 0.0)
    raw = fcluster(linkage(squareform(D, checks=False), method="complete"), t=n_modes, criterion="maxclust")
    ids, counts = np.unique(raw, return_counts=True)
    rank = {cid: k for k, cid in enumerate(ids[np.argsort(-counts, kind="stable")])}
    return np.array([rank[c] for c in raw])


class CMD:
    """Correlation Mode Decomposition of a ``(step, param)`` trajectory (Brokman et al. [1]_).

    Parameters
    ----------
    n_modes : number of modes M (clusters of correlated parameters), ≥ 1.
    n_samples : parameters sampled (uniformly, without replacement) to find the modes; all of them
        when the trajectory has fewer.
    reference : ``"parameter"`` — the paper's choice: the sampled member of each mode with the
        largest mean |corr| to its mode; ``"mean"`` — the mean of the mode's sampled members,
        standardised and sign-aligned to that member (averages their noise away).
    seed : seed of the parameter sample.
    chunk_bytes : memory for one parameter chunk of the trajectory (float64).

    Attributes
    ----------
    param_mode_ : (N,) int mode of each parameter; a_, b_ : (N,) coefficients;
    reference_ : (M, T) reference trajectories over ``steps_``; reference_param_ : (M,) the
    reference parameters (``reference="parameter"``) or ``None``; relative_error_ : (T,)
    ``‖w(t) − ŵ(t)‖ / ‖w(t)‖``; n_modes_ : M found.
    """

    def __init__(self, n_modes: int, *, n_samples: int = 1000, reference: str = "parameter", seed: int = 0,
                 chunk_bytes: int = 2**27):
        for name, value in (("n_modes", n_modes), ("n_samples", n_samples)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        if n_modes > n_samples:
            raise ValueError(f"n_modes={n_modes} exceeds n_samples={n_samples}: every mode needs a sampled parameter")
        self.n_modes, self.n_samples, self.reference = int(n_modes), int(n_samples), reference
        self.seed, self.chunk_bytes = seed, chunk_bytes

    # -- modes and references -------------------------------------------------------------------
    def _find_modes(self, traj: xr.DataArray) -> np.ndarray:
        """Sample, cluster and define the references as a linear map of the sampled parameters.

        Sets ``_sample`` (K,), ``_ref_map`` (K, M), ``_ref_offset`` (M,) so that the references of
        any steps are ``r = S @ _ref_map + _ref_offset`` with ``S`` the sampled columns; returns
        the references over ``traj``'s steps, (T, M).
        """
        n_param = traj.shape[1]
        rng = np.random.default_rng(self.seed)
        k = min(self.n_samples, n_param)
        self._sample = np.sort(rng.choice(n_param, size=k, replace=False))
        S = self._sampled(traj)
        labels = correlation_clusters(S, self.n_modes)
        C = abs_correlation(S, S)
        M = int(labels.max()) + 1
        ref_map, offset, centres = np.zeros((k, M)), np.zeros(M), np.zeros(M, dtype=int)
        for m in range(M):
            members = np.flatnonzero(labels == m)
            centre = members[np.argmax(C[np.ix_(members, members)].mean(axis=1))]
            centres[m] = centre
            if self.reference == "parameter":
                ref_map[centre, m] = 1.0
                continue
            X = S[:, members]
            mu, sd = X.mean(0), X.std(0)
            sign = np.sign((X - mu).T @ (S[:, centre] - S[:, centre].mean()))
            w = np.where(sd > 0, sign / np.where(sd > 0, sd, 1.0), 0.0) / len(members)
            ref_map[members, m], offset[m] = w, -(w * mu).sum()
        self._ref_map, self._ref_offset = ref_map, offset
        self.n_modes_ = M
        params = np.asarray(traj["param"].values)
        self.reference_param_ = params[self._sample[centres]] if self.reference == "parameter" else None
        return S @ ref_map + offset

    def _sampled(self, traj: xr.DataArray) -> np.ndarray:
        S = np.asarray(traj.isel(param=self._sample).values, dtype=np.float64)
        if not np.isfinite(S).all():
            bad = self._sample[~np.isfinite(S).all(axis=0)]
            raise ValueError(f"trajectory contains NaN/Inf (e.g. in param index {int(bad[0])})")
        return S

    # -- least squares from running sums ----------------------------------------------------------
    def _coefficients(self, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` of the parameters ``cols``: least squares over all steps seen, in shifted form.

        With ``w̃ = w − w̄₀``, ``r̃ = r − r̄₀`` (means over the first fit, for accuracy),
        ``a = cov(w̃, r̃)/var(r̃)`` and ``b = mean(w̃) − a·mean(r̃) + w̄₀ − a·r̄₀`` ([1]_, the CMD
        least-squares fit of ``w_i ≈ a_i r + b_i``); ``a = 0`` when the reference is constant.
        """
        mode, n = self.param_mode_[cols], self._n
        mr = self._sum_r[mode] / n
        var_r = self._sum_rr[mode] / n - mr**2
        mw = self._sum_w[cols] / n
        cov = self._sum_wr[cols] / n - mw * mr
        a = np.where(var_r > 0, cov / np.where(var_r > 0, var_r, 1.0), 0.0)
        b = mw - a * mr + self._shift_w[cols] - a * self._shift_r[mode]
        return a, b

    def _accumulate(self, block: np.ndarray, refs_c: np.ndarray, cols: slice) -> None:
        """Add a block's steps to the running sums of the parameters ``cols``."""
        wc = block - self._shift_w[cols]
        self._sum_w[cols] += wc.sum(0)
        self._sum_wr[cols] += (wc * refs_c[:, self.param_mode_[cols]]).sum(0)

    def _squared_errors(self, block: np.ndarray, refs: np.ndarray, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """Per step: ``Σ_i (w_i − a_i r − b_i)²`` and ``Σ_i w_i²`` over the parameters ``cols``."""
        a, b = self._coefficients(cols)
        fit = refs[:, self.param_mode_[cols]] * a + b
        return ((block - fit) ** 2).sum(1), (block**2).sum(1)

    # -- public API ---------------------------------------------------------------------------
    def fit(self, X: Any) -> CMD:
        """Find modes and references on ``X`` and fit every parameter; returns ``self``.

        ``X`` : a Run, a (``step``, ``param``) DataArray (lazy is fine) or a 2-D array, ≥ 3 steps.
        """
        traj = self._check(X, fitted=False)
        refs = self._find_modes(traj)
        n_step, n_param = traj.shape
        self._shift_r = refs.mean(0)
        refs_c = refs - self._shift_r
        self._n, self._sum_r, self._sum_rr = n_step, refs_c.sum(0), (refs_c**2).sum(0)
        self.param_mode_ = np.zeros(n_param, dtype=int)
        self._shift_w, self._sum_w, self._sum_wr = (np.zeros(n_param) for _ in range(3))
        err, norm = np.zeros(n_step), np.zeros(n_step)
        for i, block in param_chunks(traj, self.chunk_bytes):
            cols = slice(i, i + block.shape[1])
            self.param_mode_[cols] = np.argmax(abs_correlation(block, refs), axis=1)
            self._shift_w[cols] = block.mean(0)
            self._accumulate(block, refs_c, cols)
            e, w = self._squared_errors(block, refs, cols)
            err, norm = err + e, norm + w
        self.a_, self.b_ = self._coefficients(slice(None))
        self.reference_, self.steps_ = refs.T, np.asarray(traj["step"].values)
        self.relative_error_ = np.sqrt(err / np.maximum(norm, np.finfo(float).tiny))
        self.params_ = np.asarray(traj["param"].values)
        self.n_fit_steps_ = n_step
        return self

    def partial_fit(self, X: Any) -> CMD:
        """Online CMD: update ``(a, b)`` with new steps ``X`` (same parameters), modes kept; returns ``self``.

        ``relative_error_`` of the new steps uses the coefficients known *before* they arrived
        (the error the online model makes on each checkpoint as it comes in); the update then
        makes ``(a_, b_)`` the least-squares fit over all steps seen so far.
        """
        traj = self._check(X, fitted=True)
        refs = self._sampled(traj) @ self._ref_map + self._ref_offset
        refs_c = refs - self._shift_r
        err, norm = np.zeros(traj.shape[0]), np.zeros(traj.shape[0])
        for i, block in param_chunks(traj, self.chunk_bytes):
            cols = slice(i, i + block.shape[1])
            e, w = self._squared_errors(block, refs, cols)
            err, norm = err + e, norm + w
            self._accumulate(block, refs_c, cols)
        self._n += traj.shape[0]
        self._sum_r, self._sum_rr = self._sum_r + refs_c.sum(0), self._sum_rr + (refs_c**2).sum(0)
        self.a_, self.b_ = self._coefficients(slice(None))
        self.reference_ = np.concatenate([self.reference_, refs.T], axis=1)
        self.steps_ = np.concatenate([self.steps_, np.asarray(traj["step"].values)])
        self.relative_error_ = np.concatenate(
            [self.relative_error_, np.sqrt(err / np.maximum(norm, np.finfo(float).tiny))])
        return self

    def _check(self, X: Any, fitted: bool) -> xr.DataArray:
        traj = as_trajectory(X)
        n_step, n_param = traj.shape
        if fitted:
            if not hasattr(self, "a_"):
                raise RuntimeError("CMD is not fitted yet; call fit(X) on the warm-up steps first")
            if n_param != self.a_.size:
                raise ValueError(f"X has {n_param} params, the fitted trajectory {self.a_.size}")
            if n_step < 1:
                raise ValueError("X holds no new steps")
            return traj
        if n_step < 3:
            raise ValueError(f"CMD needs at least 3 recorded steps to fit, got {n_step}")
        if self.n_modes > n_param:
            raise ValueError(f"n_modes={self.n_modes} exceeds the {n_param} params of the trajectory")
        return traj

    def reconstruct(self) -> xr.DataArray:
        """The CMD model ``a_i r_{m(i)}(t) + b_i`` over ``steps_``, a (``step``, ``param``) DataArray."""
        if not hasattr(self, "a_"):
            raise RuntimeError("CMD is not fitted yet; call fit(X) first")
        W = self.reference_.T[:, self.param_mode_] * self.a_ + self.b_
        return xr.DataArray(W, dims=("step", "param"), coords={"step": self.steps_, "param": self.params_})

    def to_dataset(self) -> xr.Dataset:
        """Modes, coefficients, references and the relative error as an :class:`xarray.Dataset`.

        Dims ``param``, ``mode``, ``step``: ``param_mode``, ``a``, ``b`` (param); ``reference``
        (mode, step); ``mode_size`` and, for ``reference="parameter"``, ``reference_param``
        (mode); ``relative_error`` (step). Attrs: ``stored_numbers`` = M·T + 2N (what CMD keeps of
        an N × T trajectory), ``n_fit_steps`` (steps before online updates), the paper.
        """
        if not hasattr(self, "a_"):
            raise RuntimeError("CMD is not fitted yet; call fit(X) first")
        M, T, N = self.n_modes_, self.steps_.size, self.a_.size
        data = {"param_mode": ("param", self.param_mode_), "a": ("param", self.a_), "b": ("param", self.b_),
                "reference": (("mode", "step"), self.reference_), "relative_error": ("step", self.relative_error_),
                "mode_size": ("mode", np.bincount(self.param_mode_, minlength=M))}
        if self.reference_param_ is not None:
            data["reference_param"] = ("mode", self.reference_param_)
        return xr.Dataset(data, coords={"param": self.params_, "mode": np.arange(M), "step": self.steps_},
                          attrs={"method": "CMD", "n_modes": M, "n_samples": int(self._sample.size),
                                 "reference_kind": self.reference, "n_fit_steps": int(self.n_fit_steps_),
                                 "online": int(T > self.n_fit_steps_), "stored_numbers": int(M * T + 2 * N),
                                 "reference": _PAPER})


def cmd(traj_or_run: Any, n_modes: int, *, n_samples: int = 1000, reference: str = "parameter",
        online: bool = False, warmup: int = 20, chunk_steps: int = 1, seed: int = 0,
        chunk_bytes: int = 2**27) -> xr.Dataset:
    """Correlation Mode Decomposition of a training trajectory (Brokman et al. [1]_) → Dataset.

    Parameters
    ----------
    traj_or_run : a Run (its ``trajectory()``), a (``step``, ``param``) DataArray or a 2-D array.
    n_modes : number of modes M. ``n_samples``, ``reference``, ``seed``, ``chunk_bytes``: see :class:`CMD`.
    online : fit the modes and ``(a, b)`` on the first ``warmup`` steps, then stream the rest of the
        trajectory ``chunk_steps`` steps at a time through :meth:`CMD.partial_fit` (online CMD).
        ``relative_error`` after the warm-up is then the error at arrival of each checkpoint.

    Returns
    -------
    xr.Dataset from :meth:`CMD.to_dataset`: ``param_mode``, ``a``, ``b`` (param), ``reference``
    (mode, step), ``relative_error`` (step), ``mode_size`` / ``reference_param`` (mode).
    """
    est = CMD(n_modes, n_samples=n_samples, reference=reference, seed=seed, chunk_bytes=chunk_bytes)
    if not online:
        return est.fit(traj_or_run).to_dataset()
    traj = as_trajectory(traj_or_run)
    for name, value in (("warmup", warmup), ("chunk_steps", chunk_steps)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if warmup >= traj.shape[0]:
        raise ValueError(f"warmup={warmup} leaves none of the {traj.shape[0]} recorded steps for online updates")
    est.fit(traj.isel(step=slice(0, warmup)))
    for s in range(warmup, traj.shape[0], chunk_steps):
        est.partial_fit(traj.isel(step=slice(s, s + chunk_steps)))
    return est.to_dataset()
