"""Notebook 04 (Koopman) in quick mode: analytic eigenvalues, ResDMD filtering, training spectra."""
from __future__ import annotations

import numpy as np

from tests.notebooks.conftest import read_results


def test_04_koopman_quick(run_notebook):
    res = read_results(run_notebook("04_koopman"))
    # analytic systems, noise-free: eigenvalues to 1e-8; with 1e-3 noise still close
    for key in ("planted_error", "monomials_error", "slow_manifold_error", "hankel_error"):
        assert res[key] < 1e-8, key
    assert res["planted_error_noise_1e-3"] < 1e-2
    # ResDMD on the measure-preserving pendulum (Colbrook & Townsend 2023)
    pend = res["pendulum"]
    assert pend["n_inside_0.9"] >= 5 and pend["min_residual_inside_0.9"] > 0.3
    assert pend["n_kept"] >= 5 and pend["max_unit_circle_distance_kept"] < 0.02
    # τ(z) is 1-Lipschitz and τ(λ) = res(λ): on the grid it dips to ≤ min residual + half a cell diagonal
    ps = res["pseudospectrum"]
    assert 0 <= ps["min"] <= ps["min_residual"] + ps["grid_spacing"] / np.sqrt(2) + 1e-12
    # training-trajectory spectra: finite, leading eigenvalue near 1 (slow weight drift)
    traj = res["trajectory"]
    top = np.array(traj["top_modulus"])
    assert traj["n_windows"] >= 3 and np.isfinite(top).all() and np.all(np.abs(top - 1) < 0.1)
    D = np.array(res["distance_matrix"]["values"])
    np.testing.assert_allclose(D, D.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(D), 0, atol=1e-12)
    assert (D[~np.eye(len(D), dtype=bool)] > 0).all()
    fc = res["forecast"]
    # the recorded weights' loss equals the loss fit logged at that step (independent check)
    np.testing.assert_allclose(fc["train_loss_actual"], fc["logged_train_loss"], rtol=1e-5)
    assert np.isfinite(fc["train_loss_predicted"]).all()
