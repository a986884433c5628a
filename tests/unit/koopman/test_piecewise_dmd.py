"""Piecewise DMD on a switched linear system: the window error jumps where the dynamics change."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
import xarray as xr

from tests.unit.koopman.test_koopman import match_error
from workbench.koopman import DMD, piecewise_dmd


def rotations(radii, angles):
    return sla.block_diag(*[r * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
                            for r, a in zip(radii, angles)])


def switched_system(n_step=80, switch=50, n_features=30, seed=0):
    """x_{t+1} = A1 x_t before ``switch``, A2 x_t after; 4 latent dims in a random basis."""
    rng = np.random.default_rng(seed)
    A1, A2 = rotations([0.99, 0.97], [0.3, 1.1]), rotations([0.98, 1.0], [0.7, 0.2])
    Q, _ = np.linalg.qr(rng.standard_normal((n_features, 4)))
    z, rows = rng.standard_normal(4), []
    for t in range(n_step):
        rows.append(z)
        z = (A1 if t < switch - 1 else A2) @ z  # x_switch is the first state produced by A2
    X = np.array(rows) @ Q.T
    eig1, eig2 = np.linalg.eigvals(A1), np.linalg.eigvals(A2)
    return xr.DataArray(X, dims=("step", "param"), coords={"step": 10 * np.arange(n_step)}), eig1, eig2


def test_window_error_jumps_at_the_switch():
    traj, eig1, eig2 = switched_system()
    ds = piecewise_dmd(traj, n_windows=[1, 2, 4, 8], rank=4)
    err = ds.window_error.sel(n_windows=4).values[:4]
    # windows of 20 steps: the third (steps 40–59) straddles the switch at 50, the others are linear
    assert err[2] > 1e-2 and np.all(np.delete(err, 2) < 1e-6)
    np.testing.assert_array_equal(ds.window_start.sel(n_windows=4)[:4], [0, 200, 400, 600])
    step_err = ds.step_error.sel(n_windows=4).values
    assert step_err[40:60].max() > 1e-2 and step_err[:40].max() < 1e-6
    # N = 8 puts a boundary on the switch: every window is linear again and the error collapses
    assert ds.error.sel(n_windows=8) < 1e-6 and ds.error.sel(n_windows=4) > 1e-2
    assert ds.error.sel(n_windows=1) > 1e-2 and ds.max_error.sel(n_windows=2) > 1e-2
    lam = ds.eig_real + 1j * ds.eig_imag
    assert match_error(lam.sel(n_windows=8, window=0).values, eig1) < 1e-8
    assert match_error(lam.sel(n_windows=8, window=7).values, eig2) < 1e-8
    assert np.isnan(ds.window_error.sel(n_windows=2, window=2))  # beyond N: padded


def test_window_errors_equal_direct_dmd_reconstruction():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((36, 12)).cumsum(0)  # a random walk: no exact linear model
    ds = piecewise_dmd(X, n_windows=3, rank=3)
    for j, s0 in enumerate([0, 12, 24]):
        Xw = X[s0:s0 + 12]
        recon = DMD(3, method="svd").fit(Xw).reconstruct()
        direct = np.linalg.norm(Xw - recon) / np.linalg.norm(Xw)
        assert abs(float(ds.window_error.values[0, j]) - direct) < 1e-7 * max(direct, 1)
        steps = np.linalg.norm(Xw - recon, axis=1) / np.linalg.norm(Xw, axis=1)
        np.testing.assert_allclose(ds.step_error.values[0, s0:s0 + 12], steps, atol=1e-6)


def test_bad_input_is_refused_clearly():
    traj, _, _ = switched_system(n_step=20)
    bad = traj.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        piecewise_dmd(bad, n_windows=2)
    with pytest.raises(ValueError, match="at least 3"):
        piecewise_dmd(traj, n_windows=7)
    with pytest.raises(ValueError, match="positive ints"):
        piecewise_dmd(traj, n_windows=[0, 2])
    with pytest.raises(ValueError, match="dims"):
        piecewise_dmd(traj.rename(step="time"))
