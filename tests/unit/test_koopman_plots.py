"""Koopman figure builders: the right traces with the right number of points, clear input errors."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.unit.koopman.test_koopman import planted_system
from widgets.plots.koopman import (
    koopman_cmd,
    koopman_distance_matrix,
    koopman_eigenvalues,
    koopman_forecast,
    koopman_modes,
    koopman_piecewise,
    koopman_pseudospectrum,
    koopman_window_spectra,
)
from workbench.koopman import (
    DMD,
    ResDMD,
    cmd,
    distance_matrix,
    forecast,
    piecewise_dmd,
    trajectory_spectrum,
)


def traces(fig):
    return {t.name: t for t in fig.data}


def test_eigenvalue_figure_colours_by_residual_and_shows_reference():
    X, lams = planted_system()
    fig = koopman_eigenvalues(DMD(10).fit(X).to_dataset(), reference=lams)
    t = traces(fig)
    assert len(t["unit circle"].x) == 361 and len(t["estimated"].x) == 10 and len(t["true"].x) == 10
    assert np.all(np.asarray(t["estimated"].marker.color) < -6)  # log10 residual of exact eigenpairs
    mod = np.abs(np.asarray(t["estimated"].x) + 1j * np.asarray(t["estimated"].y))
    np.testing.assert_allclose(np.sort(mod), np.sort(np.abs(lams)), atol=1e-8)


def test_window_spectra_pseudospectrum_distance_forecast_modes():
    X, _ = planted_system(n_features=20, n_time=60)
    spec = trajectory_spectrum(X, window=20, stride=10, rank=6)
    fig = koopman_window_spectra(spec)
    assert len(fig.data[0].x) == spec.sizes["window"] * 6
    r = ResDMD(rank=10).fit(X)
    ps = r.pseudospectrum(np.linspace(-1, 1, 7), np.linspace(-1, 1, 5))
    assert np.asarray(koopman_pseudospectrum(ps, r.to_dataset()).data[0].z).shape == (5, 7)
    D = distance_matrix([X, X[::-1].copy()], names=["fwd", "rev"], rank=6)
    assert list(koopman_distance_matrix(D).data[0].x) == ["fwd", "rev"]
    fc = forecast(X, from_step=30, horizon=5, window=20, rank=10, loss_fn=lambda v: {"train_loss": float(v @ v)})
    assert len(koopman_forecast(fc).data[0].y) == 5
    assert len(koopman_modes(r.to_dataset(), n=3).data) == 3


def test_cmd_figure_one_reference_per_mode_and_the_warmup_marker():
    rng = np.random.default_rng(0)
    walks = rng.standard_normal((40, 2)).cumsum(0)
    W = walks[:, rng.integers(0, 2, 30)] * rng.uniform(0.5, 2, 30) + 0.01 * rng.standard_normal((40, 30))
    ds = cmd(W, 2, online=True, warmup=10, chunk_steps=5)
    fig = koopman_cmd(ds)
    assert [t.name for t in fig.data[:2]] == [f"mode {m} ({int(ds.mode_size[m])} params)" for m in (0, 1)]
    np.testing.assert_allclose(fig.data[0].y, ds.reference.values[0])
    assert len(fig.data[2].y) == 40 and fig.layout.yaxis2.type == "log"
    assert len(fig.layout.shapes) == 1 and fig.layout.shapes[0].x0 == 9  # last warm-up step
    assert len(koopman_cmd(cmd(W, 2)).layout.shapes) == 0


def test_piecewise_figure_one_curve_per_window_count():
    X, _ = planted_system(n_features=20, n_time=48)
    ds = piecewise_dmd(X, n_windows=[1, 2, 4], rank=6)
    fig = koopman_piecewise(ds)
    assert [t.name for t in fig.data[:3]] == ["N = 1", "N = 2", "N = 4"]
    assert len(fig.data[0].x) == 48 and list(fig.data[3].x) == [1, 2, 4]
    with pytest.raises(ValueError, match="step_error"):
        koopman_piecewise(cmd(X, 2))


def test_figures_reject_wrong_inputs():
    with pytest.raises(ValueError, match="eig_real"):
        koopman_eigenvalues(xr.Dataset({"x": ("eig", [1.0])}))
    with pytest.raises(TypeError, match="Dataset"):
        koopman_eigenvalues(np.ones(3))
    with pytest.raises(ValueError, match="imag"):
        koopman_pseudospectrum(xr.DataArray(np.ones((2, 2)), dims=("a", "b")))
