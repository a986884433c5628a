"""Fourier progress measures: known answers on hand-made single-frequency models."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from workbench.grokking import (
    embedding_fourier_norms,
    excluded_loss,
    fourier_basis,
    gini,
    grokking_probe,
    key_frequencies,
    logit_fourier_2d,
    neuron_frequency_clusters,
    neuron_logit_fourier_norms,
    restricted_loss,
    weight_norm,
)
from workbench.grokking.fourier import fourier_2d
from workbench.grokking.mlp import MLP
from workbench.grokking.phases import detect_phases
from workbench.grokking.transformer import Transformer
from workbench.tasks.modular import ModularTask


@pytest.mark.parametrize("p", [5, 13, 113])
def test_fourier_basis_orthonormal_and_labelled(p):
    B = fourier_basis(p)
    assert B.dims == ("basis", "residue") and B.shape == (p, p)
    np.testing.assert_allclose(B.values @ B.values.T, np.eye(p), atol=1e-12)
    k = 3 % ((p - 1) // 2) + 1
    x = np.arange(p)
    np.testing.assert_allclose(B.sel(basis=f"cos {k}").values, np.cos(2 * np.pi * k * x / p) / np.sqrt(p / 2), atol=1e-12)
    assert list(B.freq.values[:3]) == [0, 1, 1]


def _single_freq_embedding(p: int, ks: list[int], d: int = 16, noise: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(p, dtype=torch.float64)
    W = noise * torch.randn(p + 1, d, generator=g, dtype=torch.float64)
    for i, k in enumerate(ks):
        W[:p, 2 * i] += 3 * torch.cos(2 * math.pi * k * t / p)
        W[:p, 2 * i + 1] += 3 * torch.sin(2 * math.pi * k * t / p)
    return W


def test_embedding_norms_and_key_frequencies_planted():
    p = 31
    W = _single_freq_embedding(p, [4, 11], noise=0.05)
    norms = embedding_fourier_norms(W, p=p)
    assert norms.dims == ("freq",) and len(norms) == 16
    # energy of 3cos + 3sin over p points: 9 p/2 · 2 = 9p per frequency, Euclidean norm sqrt(9p)
    np.testing.assert_allclose(norms.sel(freq=4), math.sqrt(9 * p), rtol=0.02)
    assert key_frequencies(W, p=p) == [4, 11] or key_frequencies(W, p=p) == [11, 4]
    assert key_frequencies(W, p=p, max_freqs=1)[0] in (4, 11)
    # a random embedding has no key frequency under the documented rule
    assert key_frequencies(Transformer(113, seed=0)) == []
    assert key_frequencies(MLP(31, seed=0)) == []


def test_neuron_logit_norms_single_frequency():
    p = 13
    c = torch.arange(p, dtype=torch.float64)
    W_logit = torch.zeros(8, p, dtype=torch.float64)
    W_logit[0] = torch.cos(2 * math.pi * 5 * c / p)
    n = neuron_logit_fourier_norms(W_logit)
    assert int(np.argmax(n.values)) == 5
    np.testing.assert_allclose(n.sel(freq=5), math.sqrt(p / 2), rtol=1e-12)
    np.testing.assert_allclose(n.drop_sel(freq=5).values, 0, atol=1e-12)


def _single_freq_logits(p: int, k: int, alpha: float) -> torch.Tensor:
    a = torch.arange(p)
    s = (a[:, None, None] + a[None, :, None] - a[None, None, :]).double()
    return alpha * torch.cos(2 * math.pi * k * s / p)  # (a, b, c)


def test_restricted_and_excluded_loss_known_answer():
    p, k, alpha = 17, 3, 4.0
    L = _single_freq_logits(p, k, alpha)
    # analytic loss: the correct class has logit alpha; the others alpha·cos(2π k j / p), j = 1..p-1
    j = torch.arange(p, dtype=torch.float64)
    analytic = float(-alpha + torch.logsumexp(alpha * torch.cos(2 * math.pi * k * j / p), 0))
    np.testing.assert_allclose(float(restricted_loss(L, [k])), analytic, rtol=1e-10)
    np.testing.assert_allclose(float(restricted_loss(L.reshape(p * p, p), [k])), analytic, rtol=1e-10)
    # with the key direction removed nothing is left: uniform logits → log p
    np.testing.assert_allclose(float(excluded_loss(L, [k])), math.log(p), rtol=1e-10)
    # keeping another frequency keeps nothing; excluding another one changes nothing
    np.testing.assert_allclose(float(restricted_loss(L, [k + 1])), math.log(p), rtol=1e-10)
    np.testing.assert_allclose(float(excluded_loss(L, [k + 1])), analytic, rtol=1e-10)
    # adding (a, b)-only terms and per-class biases: softmax ignores the first, mean keeps the second
    bias = torch.linspace(-1, 1, p, dtype=torch.float64)
    L2 = L + torch.randn(p, p, 1, dtype=torch.float64) + bias
    ref = float(torch.nn.functional.cross_entropy(
        (L + bias).reshape(p * p, p), ((torch.arange(p)[:, None] + torch.arange(p)) % p).reshape(-1)))
    np.testing.assert_allclose(float(restricted_loss(L2, [k])), ref, rtol=1e-10)
    # training subset and subtraction
    pairs = torch.tensor([[0, 1], [5, 7], [16, 16]])
    np.testing.assert_allclose(float(restricted_loss(L, [k], pairs=pairs)), analytic, rtol=1e-10)
    a = torch.arange(p)
    Lsub = alpha * torch.cos(2 * math.pi * k * (a[:, None, None] - a[None, :, None] - a[None, None, :]).double() / p)
    np.testing.assert_allclose(float(restricted_loss(Lsub, [k], op="sub")), analytic, rtol=1e-10)
    with pytest.raises(ValueError, match="key frequency"):
        restricted_loss(L, [9])
    with pytest.raises(ValueError, match="op"):
        restricted_loss(L, [k], op="mul")


def test_gini_known_values_and_weight_norm():
    np.testing.assert_allclose(float(gini(np.ones(10))), 0.0, atol=1e-12)
    np.testing.assert_allclose(float(gini(np.eye(10)[3])), 0.9, atol=1e-12)
    np.testing.assert_allclose(float(gini([1.0, 2.0, 3.0])), 2 / 9, atol=1e-12)  # Σ|xi-xj|/(2n²·mean)
    da = xr.DataArray(np.stack([np.ones(4), np.eye(4)[0]]), dims=("step", "freq"))
    np.testing.assert_allclose(gini(da).values, [0.0, 0.75])
    with pytest.raises(ValueError, match="non-negative"):
        gini([-1.0, 1.0])
    m = torch.nn.Linear(3, 2)
    expected = float(m.weight.detach().pow(2).sum() + m.bias.detach().pow(2).sum())
    np.testing.assert_allclose(float(weight_norm(m)), expected, rtol=1e-6)


def test_fourier_2d_and_neuron_clusters():
    p = 11
    a = torch.arange(p, dtype=torch.float64)
    acts = torch.zeros(p, p, 3, dtype=torch.float64)
    acts[..., 0] = torch.cos(2 * math.pi * 2 * (a[:, None] + a) / p)
    acts[..., 1] = torch.cos(2 * math.pi * 4 * a / p)[:, None] + 0.1 * torch.sin(2 * math.pi * 1 * a / p)[None, :]
    acts[..., 2] = torch.randn(p, p, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = fourier_2d(acts)
    assert f.dims == ("basis_a", "basis_b", "channel")
    # Parseval: orthonormal transform keeps the energy
    np.testing.assert_allclose((f**2).sum(("basis_a", "basis_b")).values, (acts**2).sum((0, 1)).numpy(), rtol=1e-10)
    cl = neuron_frequency_clusters(acts, threshold=0.85)
    assert list(cl.best_freq.values[:2]) == [2, 4]
    np.testing.assert_allclose(cl.frac_explained.values[0], 1.0, atol=1e-6)  # float32 transform
    np.testing.assert_allclose(cl.frac_explained.values[1], 1 / (1 + 0.01), rtol=1e-5)  # (p/2)/(p/2+.01 p/2)
    assert cl.cluster.values[2] == 0  # noise neuron is unclustered
    L = _single_freq_logits(p, 3, 2.0)
    l2 = logit_fourier_2d(L)
    assert l2.dims == ("freq_a", "freq_b")
    hot = np.unravel_index(int(np.argmax(l2.values)), l2.shape)
    assert hot == (3, 3)  # cos(w(a+b-c)) lives on the (3, 3) frequency pair only
    np.testing.assert_allclose((l2**2).sum(), (L**2).sum(), rtol=1e-10)


def test_grokking_probe_on_models():
    task = ModularTask(p=13, frac=0.5, seed=0)
    for model in (Transformer(13, d_model=32, d_mlp=64, seed=0), MLP(13, seed=0)):
        ds = grokking_probe(model, task)
        for var in ("restricted_loss", "excluded_loss", "gini", "weight_norm", "key_freq_fraction"):
            assert var in ds and ds[var].ndim == 0 and np.isfinite(float(ds[var])), var
        assert "step" not in ds.dims
        assert ds.embed_norm.dims == ("freq",) and ds.neuron_freq.dims == ("neuron",)
        # no key frequency at init: restricted loss keeps only the per-class mean ≈ chance level
        assert int(ds.n_key_freqs) == 0
        assert abs(float(ds.restricted_loss) - math.log(13)) < 0.2
    ds = grokking_probe(Transformer(13, d_model=32, d_mlp=64, seed=0), task, key_freqs=[1, 2])
    assert int(ds.n_key_freqs) == 2 and 0 < float(ds.key_freq_fraction) < 1


def test_detect_phases_on_synthetic_curves():
    steps = np.arange(0, 1000, 10)
    train_acc = np.clip(steps / 100, 0, 1)
    test_loss = np.where(steps < 400, 5.0, np.where(steps < 600, 5.0 - (steps - 400) / 200 * 4.9, 0.1))
    ds = xr.Dataset({"train_acc": ("step", train_acc), "test_loss": ("step", test_loss)}, coords={"step": steps})
    out = detect_phases(ds)
    b = out["boundaries"]
    assert b["t1"] == 100
    assert 400 < b["t2"] <= 450 and 550 <= b["t3"] < 600
    assert out["phases"]["cleanup"] == [b["t2"], b["t3"]]
    flat = ds.assign(test_loss=("step", np.full(len(steps), 5.0)))
    assert detect_phases(flat)["boundaries"]["t2"] is None
    with pytest.raises(ValueError, match="test_loss"):
        detect_phases(ds[["train_acc"]])


def test_key_frequencies_coverage_cut_drops_small_leftovers():
    # three dominant frequencies and two leftovers at ~0.5 % of the energy (still far above the
    # median): the leftovers pass the median test but not the 95 %-coverage cut
    p = 31
    W = _single_freq_embedding(p, [3, 7, 9], noise=0.0)
    W = W + 0.2 * _single_freq_embedding(p, [2, 5], noise=0.0)
    assert sorted(key_frequencies(W, p=p)) == [3, 7, 9]
    assert sorted(key_frequencies(W, p=p, coverage=1.0)) == [2, 3, 5, 7, 9]
    with pytest.raises(ValueError, match="coverage"):
        key_frequencies(W, p=p, coverage=0.0)
