"""Koopman spectra of training dynamics: sliding-window spectra, run distances, weight forecasts.

The input is a parameter trajectory θ_t with dims (``step``, ``param``) — ``Run.trajectory()`` or any
DataArray of that shape, possibly lazy (dask/zarr). Everything goes through the Gram matrix
``Z = Θ Θᵀ`` (``step × step``), accumulated over chunks of parameters, so memory is bounded by
``n_step² + chunk_bytes`` whatever the number of parameters: every window's DMD (with or without
delays) and its ResDMD residuals are computed from blocks of ``Z`` (method of snapshots).

References
----------
.. [1] Redman, Bello-Rivas, Fonoberova, Mohr, Kevrekidis, Mezić (2024). Identifying equivalent training
   dynamics. NeurIPS. arXiv:2302.09160
.. [2] Dogra & Redman (2020). Optimizing neural networks via Koopman operator theory. NeurIPS. arXiv:2006.14111
.. [3] Tu et al. (2014). On dynamic mode decomposition: theory and applications. doi:10.3934/jcd.2014.1.391
.. [4] Colbrook & Townsend (2023). Rigorous data-driven computation of spectral properties of Koopman
   operators. CPAM. doi:10.1002/cpa.22125
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from scipy.optimize import linear_sum_assignment

from workbench.koopman.core import gram_dmd
from workbench.koopman.dmd import DMD, HankelDMD
from workbench.koopman.snapshots import as_trajectory, hankel_gram, trajectory_gram


def window_spectrum(Zw: torch.Tensor, rank: int, n_features: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact DMD of consecutive rows whose Gram matrix is ``Zw`` → (eigs, residuals, |amplitudes|).

    Method of snapshots ([3]_, §2.2) through :func:`~workbench.koopman.core.gram_dmd`; residuals in
    the POD coordinates ([4]_, eq. (4.6)); amplitudes of ``Φb = x0`` from the normal equations, which
    need only blocks of ``Zw``. Eigenvalues beyond the numerical rank are returned as NaN.
    """
    out_e = np.full(rank, complex("nan"))
    out_r, out_b = np.full(rank, np.nan), np.full(rank, np.nan)
    red = gram_dmd(Zw[:-1, :-1], Zw[:-1, 1:], rank, n_features, clip=True)
    r = red.rank
    if r:
        b = red.amplitudes_from_gram(Zw[1:, 1:], Zw[1:, 0], max_cond=None)
        out_e[:r], out_r[:r], out_b[:r] = (t.cpu().numpy() for t in (red.eigs, red.residuals, b.abs()))
    return out_e, out_r, out_b


def _check_int(value: Any, name: str, low: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def trajectory_spectrum(run_or_traj: Any, window: int | None = None, stride: int | None = None, rank: int = 8,
                        delays: int = 1, *, chunk_bytes: int = 2**27,
                        device: str | torch.device | None = "auto") -> xr.Dataset:
    """DMD/Koopman eigenvalues of each sliding window of a training trajectory, with ResDMD residuals.

    Parameters
    ----------
    run_or_traj : a Run (uses ``run.trajectory()``), or a DataArray / array with dims (``step``, ``param``).
    window : recorded steps per window (default: the whole trajectory); ``stride`` : hop between
        window starts (default ``window // 2``).
    rank : eigenvalues per window; windows whose snapshots have lower numerical rank get NaN
        padding. Residuals are informative only when ``rank < window − delays`` (fewer dictionary
        functions than snapshot pairs).
    delays : time-delay embedding depth (1 = plain DMD).
    chunk_bytes : memory for one parameter chunk while accumulating the Gram matrix.

    Returns
    -------
    xr.Dataset with dims (``window``, ``eig``): ``eig_real``, ``eig_imag``, ``modulus``, ``residual``,
    ``amplitude``; coords ``step_start``, ``step_end`` (window) — Redman et al. [1]_ use these
    spectra to compare training dynamics.
    """
    traj = as_trajectory(run_or_traj)
    n_step = traj.shape[0]
    delays = _check_int(delays, "delays", 1)
    rank = _check_int(rank, "rank", 1)
    window = n_step if window is None else _check_int(window, "window", delays + 2)
    if window > n_step:
        raise ValueError(f"window={window} exceeds the {n_step} recorded steps of the trajectory")
    if window < delays + 2:
        raise ValueError(f"window must be >= delays + 2 = {delays + 2}, got {window}")
    stride = max(window // 2, 1) if stride is None else _check_int(stride, "stride", 1)
    n_pairs = window - delays
    if rank > n_pairs:
        raise ValueError(f"rank={rank} exceeds the {n_pairs} snapshot pairs in a window (window − delays)")
    Z = trajectory_gram(traj, chunk_bytes=chunk_bytes, device=device)
    steps = np.asarray(traj["step"].values)
    starts = list(range(0, n_step - window + 1, stride))
    spectra = [window_spectrum(hankel_gram(Z, s0, window - delays + 1, delays), rank, delays * traj.shape[1])
               for s0 in starts]
    E, res, amp = (np.stack(v) for v in zip(*spectra))
    ds = xr.Dataset(
        {"eig_real": (("window", "eig"), E.real), "eig_imag": (("window", "eig"), E.imag),
         "modulus": (("window", "eig"), np.abs(E)), "residual": (("window", "eig"), res),
         "amplitude": (("window", "eig"), amp)},
        coords={"window": np.arange(len(starts)), "eig": np.arange(rank),
                "step_start": ("window", steps[starts]), "step_end": ("window", steps[[s + window - 1 for s in starts]])},
        attrs={"window": window, "stride": stride, "rank": rank, "delays": delays, "method": "gram (method of snapshots)",
               "reference": "Redman et al. 2024 arXiv:2302.09160; Colbrook & Townsend 2023 doi:10.1002/cpa.22125"})
    return ds


def _eigenvalue_set(obj: Any, rank: int, delays: int, steps: slice | None) -> np.ndarray:
    if isinstance(obj, np.ndarray) and obj.ndim == 1:
        return obj.astype(np.complex128)
    if isinstance(obj, xr.Dataset) and "eig_real" in obj:
        e = (obj["eig_real"] + 1j * obj["eig_imag"]).values.reshape(-1)
        return e
    traj = as_trajectory(obj)
    if steps is not None:
        traj = traj.sel(step=steps)
    ds = trajectory_spectrum(traj, window=None, rank=rank, delays=delays)
    return (ds["eig_real"] + 1j * ds["eig_imag"]).values[0]


def wasserstein_eigs(a: np.ndarray, b: np.ndarray, p: int = 1) -> float:
    """p-Wasserstein distance between two equal-size eigenvalue sets with uniform weights.

    For uniform discrete measures of equal size the optimal transport plan is a permutation
    (Birkhoff–von Neumann), found by the Hungarian algorithm: ``W_p = (min_π (1/n) Σ|a_i − b_π(i)|^p)^{1/p}``.
    NaN entries (windows of lower numerical rank) are dropped first.
    """
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or a.size != b.size:
        raise ValueError(f"eigenvalue sets must be non-empty and of equal size, got {a.size} and {b.size}; "
                         "use the same rank for both runs")
    cost = np.abs(a[:, None] - b[None, :]) ** p
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean() ** (1.0 / p))


def run_distance(run_a: Any, run_b: Any, *, rank: int = 8, delays: int = 1, steps: slice | None = None,
                 p: int = 1) -> float:
    """Wasserstein distance between the Koopman eigenvalues of two training runs (Redman et al. [1]_).

    ``run_a`` / ``run_b`` : Runs, trajectories (DataArray/array), 1-D complex eigenvalue arrays, or
    Datasets from :func:`trajectory_spectrum` (all windows pooled). ``steps`` selects the part of
    training compared (e.g. ``slice(0, 500)`` for early training, as in [1]_).
    """
    return wasserstein_eigs(_eigenvalue_set(run_a, rank, delays, steps),
                            _eigenvalue_set(run_b, rank, delays, steps), p)


def distance_matrix(runs: Sequence[Any], names: Sequence[str] | None = None, **kwargs: Any) -> xr.DataArray:
    """Pairwise :func:`run_distance` → DataArray with dims (``run_a``, ``run_b``); eigenvalues computed once per run."""
    if len(runs) < 1:
        raise ValueError("runs must hold at least one run")
    if names is None:
        names = [getattr(r, "id", str(i)) for i, r in enumerate(runs)]
    if len(names) != len(runs):
        raise ValueError(f"names has {len(names)} entries for {len(runs)} runs")
    p = kwargs.pop("p", 1)
    sets = [_eigenvalue_set(r, kwargs.get("rank", 8), kwargs.get("delays", 1), kwargs.get("steps")) for r in runs]
    D = np.array([[wasserstein_eigs(a, b, p) for b in sets] for a in sets])
    return xr.DataArray(D, dims=("run_a", "run_b"), coords={"run_a": list(names), "run_b": list(names)},
                        name="koopman_distance", attrs={"metric": f"W{p} between Koopman eigenvalue sets",
                                                        "reference": "Redman et al. 2024 arXiv:2302.09160"})


def load_parameter_vector(model: torch.nn.Module, vector: np.ndarray, names: Sequence[str],
                          sizes: Sequence[int]) -> torch.nn.Module:
    """Write a flat parameter vector (``ParameterRecorder`` layout: ``names``/``sizes``) into ``model``."""
    params = dict(model.named_parameters())
    if sum(sizes) != vector.size:
        raise ValueError(f"vector has {vector.size} entries, the recorded layout {sum(sizes)}")
    offset = 0
    with torch.no_grad():
        for name, size in zip(names, sizes):
            p = params[name]
            p.copy_(torch.as_tensor(vector[offset:offset + size], dtype=p.dtype).view_as(p))
            offset += size
    return model


def _run_loss_fn(run: Any, traj: xr.DataArray) -> Callable[[np.ndarray], dict[str, float]]:
    """Loss of a parameter vector on the run's task (train and test), via ``run.load_model()``."""
    from workbench.tasks.modular import build_task
    from workbench.train import evaluate

    attrs = traj.attrs
    if attrs.get("mode") != "parameters":
        raise ValueError("forecast needs raw parameters in the trajectory, but this run recorded a random "
                         "projection; train with trajectory=ParameterRecorder(model, project_dim=None)")
    model, task = run.load_model(), build_task(run.config["task"])
    names, sizes = list(attrs["names"]), [int(s) for s in attrs["sizes"]]

    def loss(vector: np.ndarray) -> dict[str, float]:
        load_parameter_vector(model, vector, names, sizes)
        train_loss, train_acc = evaluate(model, task.train_x, task.train_y)
        test_loss, test_acc = evaluate(model, task.test_x, task.test_y)
        return {"train_loss": train_loss, "test_loss": test_loss, "train_acc": train_acc, "test_acc": test_acc}

    return loss


def forecast(run_or_traj: Any, from_step: int, horizon: int, *, window: int = 20, rank: int | None = None,
             delays: int = 1, loss_fn: Callable[[np.ndarray], dict[str, float] | float] | None = None,
             device: str | torch.device | None = "auto") -> xr.Dataset:
    """Koopman forecast of the weights ``horizon`` steps ahead, and the loss of the forecast weights.

    Fits (Hankel) DMD on the ``window`` recorded steps ending at ``from_step`` and predicts each
    later recorded step up to ``from_step + horizon`` (Dogra & Redman [2]_). For a Run recorded with
    raw parameters the loss is evaluated on the run's task with the model from ``run.load_model()``;
    otherwise pass ``loss_fn(vector) -> float | {name: float}``.

    Returns
    -------
    xr.Dataset over ``step`` (the forecast steps): ``relative_error`` ``‖θ̂−θ‖/‖θ−θ_from‖`` (NaN where
    the step was not recorded), ``<name>_predicted`` / ``<name>_actual`` for each loss, and
    ``<name>_start`` (scalar: the loss at ``from_step``, i.e. of not moving at all).
    """
    traj = as_trajectory(run_or_traj)
    steps = np.asarray(traj["step"].values)
    if from_step not in steps:
        raise ValueError(f"from_step={from_step} is not a recorded step; recorded: {steps[0]}..{steps[-1]}")
    i0 = int(np.nonzero(steps == from_step)[0][0])
    window = _check_int(window, "window", delays + 2)
    if i0 + 1 < window:
        raise ValueError(f"from_step={from_step} has only {i0 + 1} recorded steps up to it; window={window}")
    hist = steps[i0 - window + 1:i0 + 1]
    dstep = np.diff(hist)
    if not (dstep == dstep[0]).all():
        raise ValueError("recorded steps in the fit window are not evenly spaced")
    dstep = int(dstep[0])
    horizon = _check_int(horizon, "horizon", dstep)
    k = horizon // dstep
    X = np.asarray(traj.isel(step=slice(i0 - window + 1, i0 + 1)).values, dtype=np.float64)
    model = (HankelDMD(delays, rank, device=device) if delays > 1 else DMD(rank, device=device)).fit(X)
    pred = model.predict(k)
    future = from_step + dstep * np.arange(1, k + 1)
    start_vec = X[-1]
    actual = [np.asarray(traj.sel(step=s).values, dtype=np.float64) if s in steps else None for s in future]
    rel = [np.linalg.norm(p - a) / max(np.linalg.norm(a - start_vec), 1e-300) if a is not None else np.nan
           for p, a in zip(pred, actual)]
    data: dict[str, Any] = {"relative_error": ("step", np.array(rel))}
    if loss_fn is None and hasattr(run_or_traj, "load_model"):
        loss_fn = _run_loss_fn(run_or_traj, traj)
    if loss_fn is not None:
        def as_dict(v):
            return v if isinstance(v, dict) else {"loss": float(v)}
        for name, value in as_dict(loss_fn(start_vec)).items():
            data[f"{name}_start"] = ((), value)
        rows_p = [as_dict(loss_fn(p)) for p in pred]
        rows_a = [as_dict(loss_fn(a)) if a is not None else None for a in actual]
        for name in rows_p[0]:
            data[f"{name}_predicted"] = ("step", np.array([r[name] for r in rows_p]))
            data[f"{name}_actual"] = ("step", np.array([r[name] if r else np.nan for r in rows_a]))
    return xr.Dataset(data, coords={"step": future},
                      attrs={"from_step": int(from_step), "window": window, "rank": int(model.rank_),
                             "delays": delays, "reference": "Dogra & Redman 2020 arXiv:2006.14111"})
