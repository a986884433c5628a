"""Numba CPU kernels of the toy-model step against their torch references, on the same numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.kernels.toy_cpu import batch_loss_grad_cpu, sample_features, uniforms_from_doubles
from workbench.models.toy import ToyModels, augmented_weights, batch_loss_grad, fill_uniform


def test_each_double_gives_its_top_two_24_bit_halves():
    hi, lo = np.array([0, 1, 2**24 - 1, 12345]), np.array([2**24 - 1, 0, 7, 2**23])
    d = (hi * 2.0**24 + lo) / 2.0**48 + 2.0**-50                      # low bits below 48 are dropped
    out = np.empty(8, np.float32)
    uniforms_from_doubles(d, out)
    np.testing.assert_array_equal(out[0::2], (hi / 2.0**24).astype(np.float32))
    np.testing.assert_array_equal(out[1::2], (lo / 2.0**24).astype(np.float32))
    odd = np.empty(7, np.float32)                                     # odd length: last double, top half
    uniforms_from_doubles(d, odd)
    np.testing.assert_array_equal(odd, out[:7])


def test_split_halves_are_uncorrelated_uniforms():
    u = fill_uniform(torch.empty(400000), np.random.Generator(np.random.SFC64(3))).numpy()
    assert float(u.min()) >= 0 and float(u.max()) < 1
    assert abs(np.corrcoef(u[0::2], u[1::2])[0, 1]) < 0.01            # 4 sigma at n = 200k
    np.testing.assert_allclose(np.histogram(u, bins=16, range=(0, 1))[0] / u.size, 1 / 16, atol=0.002)


@pytest.mark.parametrize("nonempty", [False, True])
def test_sample_features_reproduces_generate_batch_bit_for_bit(nonempty):
    p = torch.tensor([[1.0, 0.5, 0.3, 0.05, 0.9, 0.2], [0.01, 0.02, 0.01, 0.5, 1.0, 0.003],
                      [0.7, 0.7, 0.7, 0.7, 0.7, 0.7]])
    m = ToyModels(3, 6, 2, feature_probability=p)
    B = 333                                                           # not a multiple of any vector width
    x_ref = m.generate_batch(B, np.random.Generator(np.random.SFC64(9)), nonempty=nonempty)
    gen = np.random.Generator(np.random.SFC64(9))                     # the same draws, in the same order
    u_t, u0 = fill_uniform(torch.empty(3, 6, B), gen), torch.zeros(3, B)
    if nonempty:
        fill_uniform(u0, gen)
    out = torch.ones(3, 7, B)
    sample_features(u_t.numpy(), u0.numpy(), p.numpy(), m._first_cdf().numpy(), nonempty, out.numpy())
    assert torch.equal(out[:, :6], x_ref.mT)
    assert torch.equal(out[:, 6], torch.ones(3, B))                   # the [x; 1] row is left alone
    if nonempty:
        assert bool((out[:, :6] != 0).any(1).all())


@pytest.mark.parametrize("variant", ["relu", "linear"])
def test_batch_loss_grad_cpu_matches_the_torch_reference(variant):
    I, F, H, B = 4, 9, 3, 517
    m = ToyModels(I, F, H, feature_probability=torch.tensor([1.0, 0.3, 0.05, 0.6]),
                  importance=torch.rand(I, F, generator=torch.Generator().manual_seed(0)), variant=variant, seed=2)
    m.b.data.normal_(0, 0.4, generator=torch.Generator().manual_seed(1))
    x = m.generate_batch(B, np.random.default_rng(4))
    W, b = m.W.detach(), m.b.detach()
    x1_t = torch.cat((x.mT, torch.ones(I, 1, B)), 1)
    out = {}
    for name, fn in (("numba", batch_loss_grad_cpu), ("torch", batch_loss_grad)):
        gw, gb = torch.empty_like(W), torch.empty_like(b)
        loss = fn(augmented_weights(W, b), W, m.importance, x1_t.clone(), relu=variant == "relu", grad_w=gw, grad_b=gb)
        out[name] = (loss, gw, gb)
    for got, ref in zip(out["numba"], out["torch"]):
        torch.testing.assert_close(got, ref, rtol=2e-5, atol=1e-7)
    assert float(out["torch"][1].abs().max()) > 1e-3                   # a real gradient, not zeros


def test_loss_and_grad_auto_and_torch_backends_agree_and_nan_propagates():
    m = ToyModels(5, 8, 3, feature_probability=torch.logspace(0, -2, 5), seed=0)
    x = m.generate_batch(200, np.random.default_rng(0), nonempty=True)
    results = []
    for backend in ("auto", "torch"):
        loss = m.loss_and_grad(x, nonempty=True, backend=backend)
        results.append((loss, m.W.grad.clone(), m.b.grad.clone()))
    for got, ref in zip(*results):
        torch.testing.assert_close(got, ref, rtol=2e-5, atol=1e-7)
    m.b.data[2, 0] = float("nan")                                      # a diverged instance stays visible
    loss = m.loss_and_grad(x, nonempty=True)
    assert bool(torch.isnan(loss[2])) and bool(torch.isfinite(loss[[0, 1, 3, 4]]).all())
    loss = m.sample_loss_and_grad(64, np.random.default_rng(1))
    assert bool(torch.isnan(loss[2])) and bool(torch.isfinite(loss[[0, 1, 3, 4]]).all())
