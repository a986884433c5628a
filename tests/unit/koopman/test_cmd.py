"""CMD against planted modes: partition recovered, error at the noise level, online = offline least squares."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import adjusted_rand_score

from workbench.koopman import CMD, cmd


def planted_modes(n_modes=3, per_mode=100, n_step=120, noise=0.01, seed=0):
    """w_i(t) = a_i r_{m(i)}(t) + b_i + noise: standardised random walks r_m, shuffled labels m."""
    rng = np.random.default_rng(seed)
    walks = rng.standard_normal((n_step, n_modes)).cumsum(0)
    walks = (walks - walks.mean(0)) / walks.std(0)
    labels = rng.permutation(np.repeat(np.arange(n_modes), per_mode))
    a = rng.uniform(0.5, 2, labels.size) * rng.choice([-1, 1], labels.size)
    b = rng.standard_normal(labels.size)
    E = noise * rng.standard_normal((n_step, labels.size))
    W = walks[:, labels] * a + b + E
    noise_level = np.linalg.norm(E, axis=1) / np.linalg.norm(W, axis=1)  # per step
    return W, labels, a, noise_level


def test_noise_free_modes_are_exact_and_a_is_relative_to_the_reference():
    W, labels, a, _ = planted_modes(noise=0.0)
    ds = cmd(W, 3)
    assert adjusted_rand_score(labels, ds.param_mode.values) == 1.0
    assert float(ds.relative_error.max()) < 1e-12
    for m in range(3):  # r_m is a parameter, so a_i = a_true_i / a_true_ref
        ref = int(ds.reference_param[m])
        members = ds.param_mode.values == m
        np.testing.assert_allclose(ds.a.values[members], a[members] / a[ref], rtol=1e-10)
    assert ds.attrs["stored_numbers"] == 3 * 120 + 2 * 300
    assert sorted(ds.mode_size.values.tolist(), reverse=True) == ds.mode_size.values.tolist()


@pytest.mark.parametrize("reference, lo, hi", [("parameter", 1.0, 1.25), ("mean", 0.95, 1.05)])
def test_planted_partition_recovered_and_error_at_the_noise_level(reference, lo, hi):
    W, labels, _, noise_level = planted_modes(noise=0.01)
    ds = cmd(W, 3, reference=reference)
    assert adjusted_rand_score(labels, ds.param_mode.values) >= 0.99
    ratio = float(np.mean(ds.relative_error.values / noise_level))
    # a parameter reference carries its own noise into every fit (errors in the regressor): a bit
    # above the noise level; the mean of the mode's samples averages that noise away
    assert lo <= ratio <= hi, ratio
    assert ds.reference.dims == ("mode", "step") and ds.sizes == {"param": 300, "mode": 3, "step": 120}


def test_online_cmd_equals_least_squares_over_all_steps_seen():
    W, labels, _, noise_level = planted_modes(noise=0.01, seed=1)
    ds = cmd(W, 3, online=True, warmup=20, chunk_steps=7)
    assert adjusted_rand_score(labels, ds.param_mode.values) >= 0.99
    R, m = ds.reference.values, ds.param_mode.values  # references over all 120 steps
    for i in range(0, 300, 37):
        A = np.stack([R[m[i]], np.ones(120)], 1)
        a, b = np.linalg.lstsq(A, W[:, i], rcond=None)[0]
        assert abs(a - float(ds.a[i])) < 1e-10 and abs(b - float(ds.b[i])) < 1e-10
    assert ds.attrs["online"] == 1 and ds.attrs["n_fit_steps"] == 20
    # each checkpoint predicted with the coefficients known before it arrived: still near the noise
    assert float(np.mean(ds.relative_error.values[20:] / noise_level[20:])) < 1.5


def test_chunked_lazy_run_gives_the_same_result(tmp_path):
    from workbench.store import RunStore

    W, _, _, _ = planted_modes(per_mode=40, n_step=30, seed=2)
    run = RunStore(tmp_path).create({"kind": "cmd-test"})
    for t, row in enumerate(W):
        run.append_trajectory(10 * t, row)
    stored = run.trajectory().values.astype(np.float64)
    whole = cmd(stored, 3)
    lazy = cmd(run, 3, chunk_bytes=30 * 8 * 16)  # 16 params per chunk
    for name in ("param_mode", "a", "b", "relative_error"):
        np.testing.assert_allclose(lazy[name].values, whole[name].values, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(lazy.step, 10 * np.arange(30))
    recon = CMD(3).fit(run).reconstruct()
    assert recon.dims == ("step", "param")
    rel = np.linalg.norm(recon.values - stored, axis=1) / np.linalg.norm(stored, axis=1)
    np.testing.assert_allclose(rel, lazy.relative_error.values, rtol=1e-9)


def test_bad_input_is_refused_clearly():
    W, _, _, _ = planted_modes(per_mode=5, n_step=10)
    bad = W.copy()
    bad[4, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cmd(bad, 3)
    with pytest.raises(ValueError, match="at least 3 recorded steps"):
        cmd(W[:2], 3)
    with pytest.raises(ValueError, match="exceeds the 15 params"):
        cmd(W, 16, n_samples=100)
    with pytest.raises(ValueError, match="n_samples"):
        cmd(W, 5, n_samples=4)
    with pytest.raises(ValueError, match="reference"):
        cmd(W, 3, reference="median")
    with pytest.raises(ValueError, match="warmup"):
        cmd(W, 3, online=True, warmup=10)
    with pytest.raises(ValueError, match="dims"):
        cmd(xr.DataArray(W, dims=("time", "param")), 3)
    with pytest.raises(RuntimeError, match="not fitted"):
        CMD(3).partial_fit(W)
    with pytest.raises(ValueError, match="params"):
        CMD(3).fit(W).partial_fit(W[:, :10])
