"""ParameterRecorder: raw parameters, and the sparse JL sketch (linear, norm-preserving, seeded)."""
import pytest
import torch
from torch import nn

from workbench.trajectory import ParameterRecorder


def _vector_model(theta: torch.Tensor) -> nn.Module:
    model = nn.Module()
    model.a = nn.Parameter(theta[:7000].clone())
    model.b = nn.Parameter(theta[7000:].reshape(-1, 100).clone())
    return model


def test_raw_mode_concatenates_the_named_tensors():
    theta = torch.randn(20_000)
    rec = ParameterRecorder(_vector_model(theta), project_dim=None)
    assert torch.equal(rec(_vector_model(theta)), theta)
    assert rec.attrs()["mode"] == "parameters"


def test_sketch_equals_its_explicit_matrix_and_is_linear():
    torch.manual_seed(0)
    t1, t2 = torch.randn(20_000), torch.randn(20_000)
    rec = ParameterRecorder(_vector_model(t1), project_dim=64, seed=3)
    # the explicit R: s non-zeros ±1/√s per column, one in each of the s row blocks
    cols = [rec._columns(n, s) for n, s in zip(rec.names, rec.sizes)]
    R = torch.zeros(64, 20_000, dtype=torch.float64)
    start = 0
    for rows, signs in cols:
        j = torch.arange(start, start + rows.shape[1])
        for k in range(rec.nonzeros):
            R[rows[k].long(), j] += signs[k].double() / rec.nonzeros**0.5
            assert int(rows[k].min()) >= k * 64 // rec.nonzeros and int(rows[k].max()) < (k + 1) * 64 // rec.nonzeros
        start += rows.shape[1]
    assert torch.count_nonzero(R, dim=0).eq(rec.nonzeros).all()
    torch.testing.assert_close(rec(_vector_model(t1)).double(), R @ t1.double(), rtol=1e-6, atol=1e-5)
    combo = rec(_vector_model(2 * t1 - 3 * t2))
    torch.testing.assert_close(combo, 2 * rec(_vector_model(t1)) - 3 * rec(_vector_model(t2)), rtol=1e-5, atol=1e-4)


def test_sketch_preserves_norms_and_distances():
    torch.manual_seed(1)
    base = torch.randn(20_000)
    rec = ParameterRecorder(_vector_model(base), project_dim=512)
    ratios = []
    for _ in range(40):
        v = torch.randn(20_000) * torch.rand(20_000)  # unequal entries, not only isotropic vectors
        ratios.append(float(rec(_vector_model(v)).norm() / v.norm()))
    ratios = torch.tensor(ratios)
    # JL: ||Rθ||² / ||θ||² has mean 1 and standard deviation ≈ sqrt(2/dim) ≈ 0.06
    assert abs(float((ratios**2).mean()) - 1) < 0.05
    assert float(ratios.min()) > 0.8 and float(ratios.max()) < 1.2


def test_seeded_deterministic_and_cache_independent():
    theta = torch.randn(20_000)
    model = _vector_model(theta)
    a = ParameterRecorder(model, seed=5)(model)
    assert torch.equal(a, ParameterRecorder(model, seed=5)(model))
    assert torch.equal(a, ParameterRecorder(model, seed=5, cache_bytes=0)(model))
    assert not torch.allclose(a, ParameterRecorder(model, seed=6)(model))


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_project_dim_and_names(bad):
    model = _vector_model(torch.randn(20_000))
    with pytest.raises(ValueError, match="project_dim"):
        ParameterRecorder(model, project_dim=bad)
    with pytest.raises(ValueError, match="unknown parameter names"):
        ParameterRecorder(model, names=["nope"])
