"""Snapshot input of the Koopman lens: arrays, labelled trajectories and Runs, and their Gram matrix.

Estimators take ``(n_time, n_features)`` arrays (rows = time), a DataArray whose time dim is
``step`` (or ``time``) — e.g. ``Run.trajectory()`` with dims (``step``, ``param``) — or a Run
itself. :func:`unwrap` returns the values and a :class:`Frame` (the coordinates), so fitted
estimators keep the step spacing ``dt`` and the ``param`` coordinate. Training-dynamics functions
work on ``(step, param)`` DataArrays through :func:`as_trajectory` and :func:`trajectory_gram`,
which reads a lazy trajectory one parameter chunk at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from workbench.device import resolve_device
from workbench.koopman.linalg import gram
from workbench.validation import as_tensor

TIME_DIMS = ("step", "time")


@dataclass(frozen=True)
class Frame:
    """Coordinates of a snapshot matrix: the time dim and its values, the feature dim and its values."""

    time_dim: str = "time"
    feature_dim: str = "feature"
    times: np.ndarray | None = None
    features: np.ndarray | None = None

    def spacing(self) -> float | None:
        """The time between snapshots if ``times`` are evenly spaced (``None`` without times).

        Raises ``ValueError`` for uneven spacing: DMD models ``x_{t+1} = A x_t`` at one fixed step.
        """
        if self.times is None or len(self.times) < 2 or not np.issubdtype(np.asarray(self.times).dtype, np.number):
            return None
        gaps = np.diff(np.asarray(self.times, dtype=np.float64))
        if not np.allclose(gaps, gaps[0], rtol=1e-9, atol=0) or gaps[0] <= 0:
            raise ValueError(f"the {self.time_dim} coordinate is not evenly spaced (gaps from {gaps.min()} to "
                             f"{gaps.max()}); DMD needs snapshots at a fixed interval: select an evenly "
                             "spaced part, or pass dt= to override")
        return float(gaps[0])


def unwrap(X: Any) -> tuple[Any, Frame | None]:
    """Values (rows = time) and :class:`Frame` of a Run, DataArray or array (``Frame`` is ``None`` for arrays)."""
    if hasattr(X, "trajectory") and callable(X.trajectory):
        X = X.trajectory()
    if not isinstance(X, xr.DataArray):
        return X, None
    time_dims = [d for d in X.dims if d in TIME_DIMS]
    if X.ndim not in (1, 2) or len(time_dims) != 1:
        raise ValueError(f"a DataArray X needs one time dim ('step' or 'time') and at most one feature dim, "
                         f"got dims {X.dims}")
    tdim = time_dims[0]
    times = np.asarray(X[tdim].values) if tdim in X.coords else None
    if X.ndim == 1:
        return np.asarray(X.values), Frame(tdim, "feature", times, None)
    fdim = next(d for d in X.dims if d != tdim)
    X = X.transpose(tdim, fdim)
    features = np.asarray(X[fdim].values) if fdim in X.coords else None
    return np.asarray(X.values), Frame(tdim, fdim, times, features)


def as_snapshots(x, name: str, device: torch.device, ndim: int | tuple[int, ...] = 2) -> torch.Tensor:
    """Snapshot matrix as a float64 tensor on ``device``, validated by :func:`~workbench.validation.as_tensor`."""
    return as_tensor(x, name, ndim=ndim, dtype=torch.float64, device=device)


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


def as_trajectory(run_or_traj: Any) -> xr.DataArray:
    """A (``step``, ``param``) DataArray from a Run (``.trajectory()``), a DataArray, or a 2-D array."""
    if hasattr(run_or_traj, "trajectory") and callable(run_or_traj.trajectory):
        traj = run_or_traj.trajectory()
    elif isinstance(run_or_traj, xr.DataArray):
        traj = run_or_traj
    elif isinstance(run_or_traj, (np.ndarray, torch.Tensor)):
        arr = np.asarray(run_or_traj)
        if arr.ndim != 2:
            raise ValueError(f"trajectory array must be 2-D (step, param), got shape {arr.shape}")
        traj = xr.DataArray(arr, dims=("step", "param"), coords={"step": np.arange(arr.shape[0])})
    else:
        raise TypeError(f"expected a Run, an xr.DataArray (step, param) or a 2-D array, got {type(run_or_traj).__name__}")
    if set(traj.dims) != {"step", "param"}:
        raise ValueError(f"trajectory must have dims ('step', 'param'), got {traj.dims}")
    if np.issubdtype(traj.dtype, np.complexfloating):
        raise ValueError("trajectory is complex; weight trajectories must be real")
    traj = traj.transpose("step", "param")
    if "step" not in traj.coords:
        traj = traj.assign_coords(step=np.arange(traj.shape[0]))
    if "param" not in traj.coords:
        traj = traj.assign_coords(param=np.arange(traj.shape[1]))
    return traj


def param_chunks(traj: xr.DataArray, chunk_bytes: int):
    """Yield ``(start, block)``: float64 ``(step, cols)`` NumPy blocks of ``traj`` of ≤ ``chunk_bytes``.

    Lazy (dask/zarr) trajectories are read in whole storage chunks, so each is read once. NaN/Inf
    in a block raise ``ValueError`` naming the parameter range.
    """
    n_step, n_param = traj.shape
    cols = max(1, int(chunk_bytes) // (8 * n_step))
    if traj.chunks is not None:
        width = traj.chunks[1][0]
        cols = max(width, cols // width * width)
    for i in range(0, n_param, cols):
        block = np.asarray(traj.isel(param=slice(i, i + cols)).values, dtype=np.float64)
        if not np.isfinite(block.sum()) and not np.isfinite(block).all():  # one reduction first
            raise ValueError(f"trajectory contains NaN/Inf in params {i}..{i + block.shape[1] - 1}")
        yield i, block


def trajectory_gram(traj: xr.DataArray, *, chunk_bytes: int = 2**27,
                    device: str | torch.device | None = "auto") -> torch.Tensor:
    """``Z = Θ Θᵀ`` (float64, ``step × step``), accumulated over parameter chunks of ≤ ``chunk_bytes``.

    Lazy (dask/zarr) trajectories are read one chunk at a time, so the whole trajectory never has
    to be in memory. NaN/Inf in any chunk raise ``ValueError``.
    """
    dev = resolve_device(device)
    n_step = traj.shape[0]
    Z = torch.zeros(n_step, n_step, dtype=torch.float64, device=dev)
    for _, block in param_chunks(traj, chunk_bytes):
        Z += gram(torch.from_numpy(block).to(dev))
    return Z


def hankel_gram(Z: torch.Tensor, start: int, n_rows: int, delays: int) -> torch.Tensor:
    """Gram matrix of delay rows ``h_t = [θ_t, …, θ_{t+d−1}]``: ``h_i·h_j = Σ_k Z[i+k, j+k]``."""
    return sum(Z[start + k:start + k + n_rows, start + k:start + k + n_rows] for k in range(delays))
