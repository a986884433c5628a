"""Superposition measures on hand-built geometries, against a loop reference, and on trained models."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from workbench.superposition import (
    analyze,
    classify_geometry,
    classify_phase,
    dimensions_per_feature,
    feature_dimensionality,
    feature_norms,
    interference,
    load,
    save,
    superposition,
    train_toy_grid,
)


def polygon(k: int) -> np.ndarray:
    """k unit vectors at angles 2πj/k: (H=2, F=k)."""
    a = 2 * np.pi * np.arange(k) / k
    return np.stack([np.cos(a), np.sin(a)])


def tetrahedron() -> np.ndarray:
    v = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float).T
    return v / np.sqrt(3)


def loop_reference(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """D_i and Σ_{j≠i}(Ŵ_i·W_j)² with explicit loops, straight from the paper's definitions."""
    F = W.shape[1]
    D, S = np.zeros(F), np.zeros(F)
    for i in range(F):
        wi = W[:, i]
        hat = wi / np.linalg.norm(wi)
        tot = sum(float(hat @ W[:, j]) ** 2 for j in range(F))
        D[i] = wi @ wi / tot
        S[i] = tot - float(hat @ wi) ** 2
    return D, S


@pytest.mark.parametrize("W, frac, name", [
    (polygon(5), 2 / 5, "pentagon"), (polygon(3), 2 / 3, "triangle"),
    (polygon(2), 1 / 2, "antipodal"), (tetrahedron(), 3 / 4, "tetrahedron"),
    (np.eye(3), 1.0, "dedicated")])
def test_uniform_polytopes_have_the_papers_dimensionalities(W, frac, name):
    np.testing.assert_allclose(feature_dimensionality(W).values, frac, atol=1e-12)
    assert set(classify_geometry(W).values.ravel()) == {name}
    # ||W||_F² = number of unit features, so dims per feature = m / F
    np.testing.assert_allclose(dimensions_per_feature(W).values, W.shape[0] / W.shape[1])


def test_measures_match_loop_reference_on_random_weights():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 4, 7))
    for k in range(3):
        D, S = loop_reference(W[k])
        np.testing.assert_allclose(feature_dimensionality(W).values[k], D, rtol=1e-10)
        np.testing.assert_allclose(superposition(W).values[k], S, rtol=1e-10)
    np.testing.assert_allclose(feature_norms(W).values, np.linalg.norm(W, axis=1))
    np.testing.assert_allclose(interference(W).values, np.einsum("ihf,ihg->ifg", W, W))
    pent = superposition(polygon(5)).values
    np.testing.assert_allclose(pent, sum(np.cos(2 * np.pi * j / 5) ** 2 for j in range(1, 5)))


def test_mixed_geometry_zero_column_and_phases():
    # antipodal pair on axis 0, a dedicated feature on axis 1, a dropped feature
    W = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_allclose(feature_dimensionality(W).values[0], [0.5, 0.5, 1.0, 0.0])
    assert list(classify_geometry(W).values[0]) == ["antipodal", "antipodal", "dedicated", "not_represented"]
    Ws = np.array([[[1.0, 0.02]], [[0.03, 1.0]], [[0.9, -0.9]]])          # n=2, m=1 phases
    assert list(classify_phase(Ws).values) == ["not_represented", "dedicated", "superposition"]


def test_dataarray_input_keeps_coords_and_bad_input_raises():
    da = xr.DataArray(np.stack([polygon(5)] * 2), dims=("instance", "hidden", "feature"),
                      coords={"instance": [10, 11], "feature": list("abcde")})
    d = feature_dimensionality(da)
    assert d.dims == ("instance", "feature") and list(d["feature"].values) == list("abcde")
    assert list(d["instance"].values) == [10, 11]
    with pytest.raises(ValueError, match="W"):
        feature_dimensionality(np.ones(3))
    with pytest.raises(ValueError, match="dims"):
        feature_dimensionality(xr.DataArray(np.ones((2, 2)), dims=("a", "b")))
    with pytest.raises(ValueError, match="NaN"):
        feature_norms(np.full((2, 2), np.nan))


@pytest.fixture(scope="module")
def grid() -> xr.Dataset:
    # n=5, m=2 (the paper's first figure): dense with decaying importance, and very sparse.
    return train_toy_grid(5, 2, [0.0, 0.99], 0.9, n_instances_per_cell=2, steps=1500,
                          batch_size=256, lr=1e-2, seed=0, progress=False)


def test_grid_dataset_layout(grid):
    assert grid["W"].dims == ("instance", "hidden", "feature")
    assert grid["b"].dims == ("instance", "feature") and grid["loss"].dims == ("instance",)
    np.testing.assert_allclose(grid["sparsity"].values, [0, 0, 0.99, 0.99])
    np.testing.assert_allclose(grid["feature_importance"].values, 0.9 ** np.arange(5), rtol=1e-6)


def test_dense_features_top_m_dedicated_rest_ignored(grid):
    a = analyze(grid.isel(instance=grid["sparsity"].values == 0))
    np.testing.assert_allclose(a["dimensionality"].values[:, :2], 1.0, atol=0.05)
    np.testing.assert_allclose(a["feature_norm"].values[:, :2], 1.0, atol=0.05)
    assert np.all(a["feature_norm"].values[:, 2:] < 0.2)
    np.testing.assert_allclose(a["WtW"].values[:, 0, 1], 0.0, atol=0.05)        # orthogonal
    assert np.all(a["n_represented"].values == 2)


def test_sparse_features_superposed_with_fractional_dimensionality(grid):
    a = analyze(grid.isel(instance=grid["sparsity"].values == 0.99))
    assert np.all(a["n_represented"].values > 2)                               # n > m features
    rep = a["feature_norm"].values > 0.5
    D = a["dimensionality"].values[rep]
    assert np.all((D > 0.3) & (D < 0.8))                                       # fractional
    assert np.all(a["dims_per_feature"].values < 0.75)


def test_save_load_roundtrip(grid, tmp_path):
    ds = grid.assign(geometry=analyze(grid)["geometry"])
    path = save(ds, tmp_path / "toy.zarr")
    back = load(path)
    xr.testing.assert_identical(back, ds)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.zarr")
