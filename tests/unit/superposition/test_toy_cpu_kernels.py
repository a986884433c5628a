"""Numba CPU kernels of the toy-model step against their torch references, on the same numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from workbench.superposition.cpu_step import (
    batch_loss_grad_cpu,
    draw_features,
    matmul_rows_,
    outer_sums_,
)
from workbench.superposition.lane_rng import LaneStream
from workbench.superposition.toy import ToyModels, augmented_weights, batch_loss_grad, fill_uniform


def test_every_lane_is_numpys_sfc64_and_each_word_gives_two_24_bit_uniforms():
    stream = LaneStream.spawn(np.random.default_rng(3))
    state = stream.state.copy()
    out = stream.fill(np.empty((2, 100), np.float32))                  # a row of 100: ⌈100/32⌉ = 4 steps
    words = np.empty((16, 8), np.uint64)
    for lane in range(16):                                            # numpy's generator, the lane's state
        ref = np.random.SFC64(0)
        ref.state = {"bit_generator": "SFC64", "state": {"state": state[:, lane].copy()},
                     "has_uint32": 0, "uinteger": 0}
        words[lane] = ref.random_raw(8)
    hi = (words >> np.uint64(40)).astype(np.float64) / 2**24           # bits 40–63, then bits 16–39
    lo = ((words >> np.uint64(16)) & np.uint64(2**24 - 1)).astype(np.float64) / 2**24
    for r in range(2):                                                # block k: 16 high halves, 16 low
        blocks = [np.concatenate((hi[:, 4 * r + k], lo[:, 4 * r + k])) for k in range(4)]
        np.testing.assert_array_equal(out[r], np.concatenate(blocks)[:100].astype(np.float32))
    assert np.array_equal(stream.state[3], state[3] + 8)               # the last 28 values are dropped


def test_lane_uniforms_are_uncorrelated_and_uniform():
    u = fill_uniform(torch.empty(400000), np.random.default_rng(3)).numpy()
    assert float(u.min()) >= 0 and float(u.max()) < 1
    assert abs(np.corrcoef(u[0::2], u[1::2])[0, 1]) < 0.01            # 4 sigma at n = 200k
    assert abs(np.corrcoef(u[:-16], u[16:])[0, 1]) < 0.01             # high vs low half of a word
    np.testing.assert_allclose(np.histogram(u, bins=16, range=(0, 1))[0] / u.size, 1 / 16, atol=0.002)
    assert stats.kstest(u[:50000], "uniform").pvalue > 1e-3


@pytest.mark.parametrize("nonempty", [False, True])
def test_draw_features_reproduces_generate_batch_bit_for_bit(nonempty):
    p = torch.tensor([[1.0, 0.5, 0.3, 0.05, 0.9, 0.2], [0.01, 0.02, 0.01, 0.5, 1.0, 0.003],
                      [0.7, 0.7, 0.7, 0.7, 0.7, 0.7]])
    m = ToyModels(3, 6, 2, feature_probability=p)
    B = 333                                                           # not a multiple of 32: partial blocks
    state = LaneStream.spawn_states(np.random.default_rng(9), 1)[0]
    x_ref = m.generate_batch(B, LaneStream(state.copy()), nonempty=nonempty)   # the torch reference
    out = torch.ones(3, 7, B)
    draw_features(state, p.reciprocal().numpy(), m._first_cdf().numpy(), nonempty, out.numpy())
    assert torch.equal(out[:, :6], x_ref.mT)
    assert torch.equal(out[:, 6], torch.ones(3, B))                   # the [x; 1] row is left alone
    assert float((out[:, :6] == 0).float().mean()) > 0.2              # sparse features are sparse
    if nonempty:
        assert bool((out[:, :6] != 0).any(1).all())


@pytest.mark.parametrize("shape", [(2, 20, 21, 1024), (3, 5, 6, 333), (2, 7, 3, 50), (1, 1, 1, 8),
                                   (2, 21, 6, 1024), (1, 6, 10, 77), (1, 4, 5, 9)])
def test_matmul_rows_equals_the_float64_product_including_padding_and_leftover_rows(shape):
    c, K, R, B = shape             # K % 4 rows one at a time, R padded (R = 4q + 2: a group of six)
    rng = np.random.default_rng(1)
    m, x = rng.standard_normal((c, K, R), np.float32), rng.random((c, R + 2, B), np.float32)
    x[:, R:] = np.nan                                                 # rows past R must not be read
    out = np.full((c, K + 1, B), 7.0, np.float32)                     # [h; 1] has a row more than M
    matmul_rows_(m, x, out)                                           # the first R rows of x only
    ref = np.einsum("ikr,irb->ikb", m.astype(np.float64), x[:, :R].astype(np.float64))
    np.testing.assert_allclose(out[:, :K], ref, rtol=1e-5, atol=1e-5)
    assert (out[:, K] == 7.0).all()                                   # rows of out past K untouched


@pytest.mark.parametrize("shape", [(2, 21, 20, 1024), (3, 7, 5, 333), (1, 3, 1, 40)])
def test_outer_sums_equal_the_float64_product_including_edge_rows_and_columns(shape):
    c, R, K, B = shape                                                # 5×2 blocks, then edge dots
    rng = np.random.default_rng(0)
    x, d = rng.random((c, R + 1, B), np.float32), rng.standard_normal((c, K + 2, B), np.float32)
    g = np.full((c, R, K), np.nan, np.float32)
    outer_sums_(x, d, g)                                              # the first R and K rows only
    ref = np.einsum("irb,ikb->irk", x[:, :R].astype(np.float64), d[:, :K].astype(np.float64))
    np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-4 * np.sqrt(B))


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
    for name, fn, weights, kw in (("numba", batch_loss_grad_cpu, (W, b), {"threads": 1}),
                                  ("numba, 3 threads", batch_loss_grad_cpu, (W, b), {"threads": 3}),
                                  ("torch", batch_loss_grad, (augmented_weights(W, b), W), {})):
        gw, gb = torch.empty_like(W), torch.empty_like(b)
        loss = fn(*weights, m.importance, x1_t.clone(), relu=variant == "relu", grad_w=gw, grad_b=gb, **kw)
        out[name] = (loss, gw, gb)
    for got, got3, ref in zip(out["numba"], out["numba, 3 threads"], out["torch"]):
        torch.testing.assert_close(got, ref, rtol=2e-5, atol=1e-7)
        assert torch.equal(got, got3)                                  # one instance per task: same bits
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
