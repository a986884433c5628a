"""Training-dynamics Koopman tools: window spectra vs direct DMD, memory, run distances, forecasts."""
from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest
import torch
import xarray as xr

from tests.unit.koopman.test_koopman import match_error, planted_system
from workbench.koopman import (
    DMD,
    HankelDMD,
    distance_matrix,
    forecast,
    run_distance,
    trajectory_spectrum,
    wasserstein_eigs,
)


def as_da(X, every=10):
    return xr.DataArray(X, dims=("step", "param"), coords={"step": np.arange(len(X)) * every})


@pytest.mark.parametrize("delays", [1, 3])
def test_window_spectra_equal_direct_dmd(delays):
    X, _ = planted_system(n_features=300, n_time=80, noise=1e-3)
    ds = trajectory_spectrum(as_da(X), window=40, stride=20, rank=10, delays=delays, chunk_bytes=40 * 80 * 8)
    assert ds.sizes == {"window": 3, "eig": 10}
    np.testing.assert_array_equal(ds.step_start, [0, 200, 400])
    np.testing.assert_array_equal(ds.step_end, [390, 590, 790])
    for w, s0 in enumerate([0, 20, 40]):
        X_w = X[s0:s0 + 40]
        ref = (DMD(10, method="svd") if delays == 1 else HankelDMD(delays, 10, method="svd")).fit(X_w)
        e = (ds.eig_real + 1j * ds.eig_imag).values[w]
        assert match_error(e, ref.eigs_) < 1e-9
        np.testing.assert_allclose(np.sort(ds.residual.values[w]), np.sort(ref.residuals_), atol=1e-9)
        np.testing.assert_allclose(np.sort(ds.amplitude.values[w]), np.sort(np.abs(ref.amplitudes_)), rtol=1e-7)


def test_noise_free_window_recovers_planted_eigenvalues_with_zero_residual():
    X, lams = planted_system(n_features=200, n_time=50)
    ds = trajectory_spectrum(X, window=30, stride=10, rank=10)
    for w in range(ds.sizes["window"]):
        assert match_error((ds.eig_real + 1j * ds.eig_imag).values[w], lams) < 1e-8
    assert float(ds.residual.max()) < 1e-7


def test_lazy_trajectory_uses_bounded_memory():
    dask_array = pytest.importorskip("dask.array")
    _, lams = planted_system()
    Xlow, _ = planted_system(n_features=10, n_time=60)  # (time, 10) latent dynamics
    n_param, chunk = 400_000, 20_000
    basis = dask_array.random.default_rng(0).standard_normal((10, n_param), chunks=(10, chunk))
    lazy = dask_array.from_array(Xlow, chunks=(60, 10)) @ basis  # (60, 400k), never materialised
    full_bytes = 60 * n_param * 8
    tracemalloc.start()
    chunk_bytes = 60 * chunk * 8
    ds = trajectory_spectrum(as_da(lazy), rank=10, chunk_bytes=chunk_bytes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # 192 MB trajectory; in memory at once: a chunk of 9.6 MB, its float64 copy and dask temporaries
    assert peak < 5 * chunk_bytes <= full_bytes / 4
    # the random basis is generic, so the latent eigenvalues survive the lift to 400k params
    assert match_error((ds.eig_real + 1j * ds.eig_imag).values[0], lams) < 1e-7


def test_trajectory_spectrum_from_a_run(tmp_path):
    from workbench.store import RunStore

    X, lams = planted_system(n_features=64, n_time=30)
    run = RunStore(tmp_path).create({"kind": "koopman-test"})
    for t, row in enumerate(X):
        run.append_trajectory(5 * t, row)
    ds = trajectory_spectrum(run, window=30, rank=10)
    np.testing.assert_array_equal(ds.step_end, [145])
    assert match_error((ds.eig_real + 1j * ds.eig_imag).values[0], lams) < 1e-4  # stored as float32


def test_wasserstein_equals_brute_force_and_is_a_metric():
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(5) + 1j * rng.standard_normal(5) for _ in range(3))
    brute = min(np.mean(np.abs(a - b[list(p)])) for p in itertools.permutations(range(5)))
    assert abs(wasserstein_eigs(a, b) - brute) < 1e-12
    assert wasserstein_eigs(a, a) == 0
    assert abs(wasserstein_eigs(a, b) - wasserstein_eigs(b, a)) < 1e-12
    assert wasserstein_eigs(a, c) <= wasserstein_eigs(a, b) + wasserstein_eigs(b, c) + 1e-12


def test_run_distance_separates_dynamics_not_coordinates():
    X0, _ = planted_system(n_features=50, n_time=60, seed=0)
    X1, _ = planted_system(n_features=50, n_time=60, seed=1)  # same eigenvalues, other basis and start
    Q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((50, 50)))
    slow = X0[::2]  # two steps per snapshot: eigenvalues squared, different dynamics
    slow = np.concatenate([slow, slow[-1:] @ np.eye(50)])[:30]
    assert run_distance(X0, X0 @ Q, rank=10) < 1e-8  # invariant to a rotation of parameter space
    D = distance_matrix([X0[:30], X1[:30], slow], names=["a", "b", "c"], rank=10)
    assert D.dims == ("run_a", "run_b")
    np.testing.assert_allclose(D.values, D.values.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(D.values), 0, atol=1e-12)
    assert float(D.sel(run_a="a", run_b="b")) < 1e-8 < float(D.sel(run_a="a", run_b="c"))


def test_forecast_of_linear_dynamics_is_exact():
    X, _ = planted_system(n_features=100, n_time=60)
    ds = forecast(as_da(X), from_step=300, horizon=50, window=25, rank=10, loss_fn=lambda v: float(v @ v))
    np.testing.assert_array_equal(ds.step, [310, 320, 330, 340, 350])
    assert float(ds.relative_error.max()) < 1e-8
    np.testing.assert_allclose(ds.loss_predicted, ds.loss_actual, rtol=1e-8)
    assert float(ds.loss_start) == pytest.approx(float(X[30] @ X[30]))


def test_forecast_on_a_trained_run_evaluates_the_run_task(tmp_path):
    from workbench.registry import build_model
    from workbench.store import RunStore
    from workbench.tasks.modular import ModularTask
    from workbench.train import default_optimizer, fit
    from workbench.trajectory import ParameterRecorder

    task = ModularTask(p=11, frac=0.5, seed=0)
    config = {"task": task.config(), "model": {"name": "mlp", "p": 11, "d_embed": 8, "d_hidden": 16}}
    run = RunStore(tmp_path).create(config)
    torch.manual_seed(0)
    model = build_model(config["model"])
    fit(model, task, default_optimizer(model, lr=1e-2), 60, run=run, eval_every=5, checkpoint_every=60,
        trajectory_every=5, trajectory=ParameterRecorder(model, project_dim=None), progress=False)
    ds = forecast(run, from_step=40, horizon=20, window=6, rank=4)
    np.testing.assert_array_equal(ds.step, [45, 50, 55, 60])
    # the loss of the recorded weights equals what fit logged at those steps: an independent check
    logged = run.metrics().train_loss.sel(step=[45, 50, 55, 60]).values
    np.testing.assert_allclose(ds.train_loss_actual.values, logged, rtol=1e-5)
    assert np.isfinite(ds.train_loss_predicted).all() and np.isfinite(ds.relative_error).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"window": 100}, "exceeds"),
    ({"window": 10, "rank": 20}, "rank"),
    ({"window": 10, "delays": 0}, "delays"),
    ({"window": 2}, "window"),
])
def test_trajectory_spectrum_errors(kwargs, match):
    X, _ = planted_system(n_features=20, n_time=40)
    with pytest.raises(ValueError, match=match):
        trajectory_spectrum(X, **kwargs)


def test_trajectory_errors_name_the_problem():
    X, _ = planted_system(n_features=20, n_time=40)
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        trajectory_spectrum(bad, rank=5)
    with pytest.raises(ValueError, match="dims"):
        trajectory_spectrum(xr.DataArray(X, dims=("time", "param")))
    with pytest.raises(TypeError, match="Run"):
        trajectory_spectrum("not a run")
    with pytest.raises(ValueError, match="from_step"):
        forecast(X, from_step=1000, horizon=2)
    with pytest.raises(ValueError, match="equal size"):
        wasserstein_eigs(np.ones(3), np.ones(4))


def test_low_rank_window_is_padded_with_nan_not_dropped():
    X, _ = planted_system(n_features=30, n_time=40)
    X[20:] = X[20]  # training stalls: later windows are constant (numerical rank 1)
    ds = trajectory_spectrum(X, window=15, stride=25, rank=6)
    assert np.isfinite(ds.eig_real.values[0]).all()
    last = ds.eig_real.values[1]
    assert np.isfinite(last).sum() == 1 and np.isnan(last).sum() == 5
    assert abs(ds.eig_real.values[1, 0] - 1) < 1e-8  # a constant trajectory: eigenvalue 1


@pytest.mark.parametrize("make", [lambda: DMD(10), lambda: HankelDMD(2, 10)], ids=["DMD", "HankelDMD"])
def test_estimators_fit_a_labelled_trajectory_and_keep_its_coordinates(make):
    X, lams = planted_system(n_features=40, n_time=50)
    traj = as_da(X, every=10).assign_coords(param=np.arange(40) + 1000)
    est = make().fit(traj)
    assert est.dt_ == 10.0 and match_error(est.eigs_, lams) < 1e-8
    np.testing.assert_allclose(est.omega_, np.log(est.eigs_) / 10)
    ds = est.to_dataset()
    assert ds.mode_real.dims == ("eig", "param")
    np.testing.assert_array_equal(ds.param, np.arange(40) + 1000)
    assert ds.attrs["dt"] == 10.0 and (ds.attrs["step_first"], ds.attrs["step_last"]) == (0, 490)
    plain = make().fit(X)
    np.testing.assert_array_equal(plain.eigs_, est.eigs_)  # the labels change nothing in the numbers
    assert plain.dt_ == 1.0 and plain.to_dataset().mode_real.dims == ("eig", "feature")


def test_dmd_fits_a_run_and_refuses_uneven_steps(tmp_path):
    from workbench.store import RunStore

    X, lams = planted_system(n_features=64, n_time=30)
    run = RunStore(tmp_path).create({"kind": "koopman-test"})
    for t, row in enumerate(X):
        run.append_trajectory(5 * t, row)
    dmd = DMD(10).fit(run)
    assert dmd.dt_ == 5.0 and match_error(dmd.eigs_, lams) < 1e-4  # stored as float32
    uneven = as_da(X).isel(step=[0, 1, 2, 4, 5, 6])
    with pytest.raises(ValueError, match="not evenly spaced"):
        DMD(3).fit(uneven)
    assert DMD(3, dt=1.0).fit(uneven).dt_ == 1.0  # an explicit dt is the caller's statement
    with pytest.raises(ValueError, match="time dim"):
        DMD().fit(xr.DataArray(X, dims=("a", "b")))
