"""ToyModels: batched forward/loss/data are exactly the per-instance model, seeded, validated."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from workbench.superposition import evaluate, train_toys
from workbench.superposition.lane_rng import LaneStream
from workbench.superposition.toy import (
    ToyModels,
    augmented_weights,
    batch_loss_grad,
    fill_uniform,
    importance_vector,
)
from workbench.superposition.triton_step import toy_loss_grad_torch


def test_forward_shapes_and_formula_per_variant():
    x = torch.rand(4, 7, 5)                                     # (I, B, F)
    for variant in ("relu", "linear", "abs"):
        m = ToyModels(4, 5, 2, variant=variant, seed=1)
        out = m(x)
        assert out.shape == (4, 7, 5)
        k = 2                                                   # instance 2 by hand, h = W x
        W, b = m.W[k].detach(), m.b[k].detach()
        if variant == "abs":
            ref = torch.relu(torch.relu(x[k] @ W.T) @ m.W_out[k].detach().T + b)
        else:
            ref = (x[k] @ W.T) @ W + b
            ref = ref if variant == "linear" else torch.relu(ref)
        torch.testing.assert_close(out[k].detach(), ref)


def test_batched_gradients_equal_single_instance_gradients():
    torch.manual_seed(0)
    big = ToyModels(3, 6, 2, importance=torch.rand(3, 6), feature_probability=[0.2, 0.5, 1.0], seed=3)
    big.b.data.normal_()
    x = big.generate_batch(32, torch.Generator().manual_seed(1))
    big.loss_per_instance(x).sum().backward()
    for k in range(3):
        one = ToyModels(1, 6, 2, importance=big.importance[k:k + 1], seed=0)
        one.W.data.copy_(big.W.data[k:k + 1])
        one.b.data.copy_(big.b.data[k:k + 1])
        one.loss_per_instance(x[k:k + 1]).sum().backward()
        torch.testing.assert_close(one.W.grad[0], big.W.grad[k])
        torch.testing.assert_close(one.b.grad[0], big.b.grad[k])


def test_data_distribution_matches_sparsity_and_uniform_values():
    m = ToyModels(3, 4, 2, feature_probability=[1.0, 0.3, 0.05], seed=0)
    x = m.generate_batch(20000, torch.Generator().manual_seed(0))
    frac_nonzero = (x != 0).float().mean((1, 2)).numpy()
    np.testing.assert_allclose(frac_nonzero, [1.0, 0.3, 0.05], atol=0.01)
    nz = x[1][x[1] != 0]
    assert float(nz.min()) >= 0 and float(nz.max()) <= 1
    assert float(nz.mean()) == pytest.approx(0.5, abs=0.01)          # U[0,1] mean
    assert float(nz.var()) == pytest.approx(1 / 12, abs=0.005)        # U[0,1] variance
    xa = ToyModels(1, 4, 2, variant="abs").generate_batch(20000, torch.Generator().manual_seed(0))
    assert float(xa.min()) < -0.99 and float(xa.max()) > 0.99 and abs(float(xa.mean())) < 0.01


def test_same_seed_same_result_and_different_seed_differs():
    def run(seed):
        m = ToyModels(2, 5, 2, feature_probability=0.3, seed=seed)
        train_toys(m, steps=20, batch_size=64, seed=seed)
        return m.W.detach().clone()
    torch.testing.assert_close(run(0), run(0), rtol=0, atol=0)
    assert not torch.allclose(run(0), run(1))


def test_linear_dense_model_reaches_pca_optimum():
    # Linear x' = WᵀWx + b on dense U[0,1] features with unit importance: the best rank-m
    # reconstruction leaves (n − m) directions of variance 1/12 unexplained → loss (n − m)/12.
    n, m_hidden = 5, 2
    m = ToyModels(2, n, m_hidden, variant="linear", seed=0)
    train_toys(m, steps=1500, batch_size=256, lr=1e-2, seed=0)
    loss = evaluate(m, n_samples=20000)
    np.testing.assert_allclose(loss, (n - m_hidden) / 12, rtol=0.04)
    eig = torch.linalg.eigvalsh(m.W.detach().transpose(1, 2) @ m.W.detach())   # WᵀW is a projector
    np.testing.assert_allclose(eig[:, -m_hidden:].numpy(), 1.0, atol=0.05)
    np.testing.assert_allclose(eig[:, :-m_hidden].numpy(), 0.0, atol=0.05)


def test_abs_variant_learns_absolute_value_better_than_constant():
    p = 0.3
    m = ToyModels(2, 4, 8, variant="abs", feature_probability=p, seed=0)
    train_toys(m, steps=800, batch_size=256, lr=1e-2, seed=0)
    baseline = 4 * (p / 3 - (p / 2) ** 2)          # predict E|x_i|: Σ_i Var|x_i|
    assert np.all(evaluate(m, n_samples=8192) < 0.3 * baseline)


def test_importance_vector_and_validation_errors():
    np.testing.assert_allclose(importance_vector(3, 0.9).numpy(), [1, 0.9, 0.81], rtol=1e-6)
    with pytest.raises(ValueError, match="variant"):
        ToyModels(1, 2, 1, variant="tanh")
    with pytest.raises(ValueError, match="n_hidden"):
        ToyModels(1, 2, 0)
    with pytest.raises(ValueError, match="feature_probability"):
        ToyModels(2, 3, 1, feature_probability=[0.5, 0.0])
    with pytest.raises(ValueError, match="feature_probability"):
        ToyModels(2, 3, 1, feature_probability=[0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="importance"):
        ToyModels(2, 3, 1, importance=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        ToyModels(1, 2, 1).generate_batch(0)
    with pytest.raises(TypeError, match="model"):
        train_toys(torch.nn.Linear(2, 2), steps=1)


def test_hand_derived_gradient_equals_autograd():
    for variant in ("relu", "linear", "abs"):
        m = ToyModels(4, 7, 3, variant=variant, importance=torch.rand(4, 7),
                      feature_probability=[0.1, 0.4, 0.8, 1.0], seed=2)
        m.b.data.normal_(0, 0.3)
        x = m.generate_batch(64, torch.Generator().manual_seed(5))
        m.zero_grad()
        ref_loss = m.loss_per_instance(x)
        ref_loss.sum().backward()
        gw, gb = m.W.grad.clone(), m.b.grad.clone()
        m.zero_grad(set_to_none=True)
        loss = m.loss_and_grad(x)
        torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(m.W.grad, gw, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(m.b.grad, gb, rtol=1e-4, atol=1e-6)


def test_nonempty_sampling_is_the_conditional_distribution_and_loss_is_unbiased():
    p = torch.tensor([[0.05, 0.05, 0.05], [0.3, 0.1, 0.6]])
    m = ToyModels(2, 3, 1, feature_probability=p, seed=0)
    x = m.generate_batch(40000, torch.Generator().manual_seed(0), nonempty=True)
    assert bool(((x != 0).sum(-1) > 0).all())                         # never empty
    # P(feature j active | x ≠ 0) = p_j / (1 − Π_k (1 − p_k))
    expect = p / (1 - (1 - p).prod(-1, keepdim=True))
    np.testing.assert_allclose((x != 0).float().mean(1).numpy(), expect.numpy(), atol=0.01)
    nz = x[x != 0]
    assert float(nz.mean()) == pytest.approx(0.5, abs=0.01)
    # same expected loss as plain sampling, for each variant
    for variant in ("relu", "linear", "abs"):
        mv = ToyModels(2, 3, 2, feature_probability=p, variant=variant, seed=1)
        mv.b.data.fill_(0.1)
        a = evaluate(mv, n_samples=200000, nonempty=True, chunk=50000)
        b = evaluate(mv, n_samples=200000, nonempty=False, chunk=50000)
        np.testing.assert_allclose(a, b, rtol=0.03)


def test_nonempty_hand_gradient_equals_autograd():
    for variant in ("relu", "linear"):
        m = ToyModels(3, 5, 2, variant=variant, feature_probability=[0.02, 0.2, 0.7], seed=4)
        m.b.data.normal_(0, 0.3)
        x = m.generate_batch(64, torch.Generator().manual_seed(5), nonempty=True)
        ref = m.loss_per_instance(x, nonempty=True)
        ref.sum().backward()
        gw, gb = m.W.grad.clone(), m.b.grad.clone()
        m.zero_grad(set_to_none=True)
        loss = m.loss_and_grad(x, nonempty=True)
        torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(m.W.grad, gw, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(m.b.grad, gb, rtol=1e-4, atol=1e-6)


def test_numpy_uniforms_and_sparse_features_have_the_paper_distribution():
    u = fill_uniform(torch.empty(200000), np.random.Generator(np.random.PCG64(0)))
    assert u.dtype == torch.float32 and float(u.min()) >= 0 and float(u.max()) < 1
    assert stats.kstest(u.numpy(), "uniform").pvalue > 1e-3
    p = torch.tensor([[1.0, 0.3, 0.05, 0.6], [0.01, 0.2, 0.9, 0.5]])
    m = ToyModels(2, 4, 2, feature_probability=p, seed=0)
    x = m.generate_batch(50000, np.random.Generator(np.random.PCG64(1)))  # x_i = 0 w.p. S, else U[0,1]
    rate = (x != 0).float().mean(1)
    np.testing.assert_allclose(rate.numpy(), p.numpy(), atol=4 * np.sqrt(0.25 / 50000))
    for k, f in ((0, 1), (0, 3), (1, 2)):
        nz = x[k, :, f][x[k, :, f] != 0].numpy()
        assert stats.kstest(nz, "uniform").pvalue > 1e-3
        assert nz.mean() == pytest.approx(0.5, abs=0.01)


def test_nonempty_mask_sampler_matches_the_conditional_distribution():
    p = torch.tensor([[0.02, 0.3, 0.02, 0.1, 0.5], [0.01, 0.01, 0.01, 0.01, 0.01]])
    m = ToyModels(2, 5, 2, feature_probability=p, seed=0)
    x = m.generate_batch(60000, np.random.Generator(np.random.PCG64(2)), nonempty=True)
    active = x != 0
    assert bool(active.any(-1).all())
    expect = p / (1 - (1 - p).prod(-1, keepdim=True))                    # P(x_j ≠ 0 | x ≠ 0)
    np.testing.assert_allclose(active.float().mean(1).numpy(), expect.numpy(), atol=0.008)
    first = active.float().argmax(-1)                                    # K: P(K=k) ∝ p_k Π_{j<k} S_j
    pk = p * torch.cumprod(torch.cat((torch.ones(2, 1), 1 - p[:, :-1]), 1), 1)
    pk = pk / pk.sum(1, keepdim=True)
    freq = torch.stack([torch.bincount(first[k], minlength=5) for k in range(2)]).float() / 60000
    np.testing.assert_allclose(freq.numpy(), pk.numpy(), atol=0.008)
    assert stats.kstest(x[x != 0].numpy(), "uniform").pvalue > 1e-3   # values incl. the forced K


@pytest.mark.parametrize("variant", ["relu", "linear"])
def test_chunked_sample_loss_and_grad_equals_autograd_on_the_same_draws(variant):
    I, F, H, B = 5, 6, 2, 48
    p = torch.tensor([0.05, 0.2, 0.5, 0.9, 1.0])
    m = ToyModels(I, F, H, feature_probability=p, importance=torch.rand(I, F), variant=variant, seed=3)
    m.b.data.normal_(0, 0.3)
    loss = m.sample_loss_and_grad(B, np.random.default_rng(7), chunk_elements=2 * B * F)
    states = LaneStream.spawn_states(np.random.default_rng(7), 3)        # replay: chunks of 2, 2, 1
    for (lo, hi), state in zip(((0, 2), (2, 4), (4, 5)), states):
        gen = LaneStream(state)
        ref = ToyModels(hi - lo, F, H, feature_probability=p[lo:hi], importance=m.importance[lo:hi],
                        variant=variant)
        ref.W.data.copy_(m.W.data[lo:hi])
        ref.b.data.copy_(m.b.data[lo:hi])
        x = ref.generate_batch(B, gen, nonempty=True)
        l_b, gw_b, gb_b = toy_loss_grad_torch(ref.W, ref.b, x, ref.importance, relu=variant == "relu")
        l_ref = ref.loss_per_instance(x, nonempty=True)
        l_ref.sum().backward()
        torch.testing.assert_close(loss[lo:hi], l_ref.detach(), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(m.W.grad[lo:hi], ref.W.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(m.b.grad[lo:hi], ref.b.grad, rtol=1e-4, atol=1e-6)
        gw, gb = torch.empty_like(gw_b), torch.empty_like(gb_b)          # batch term alone
        W, b, ones = ref.W.detach(), ref.b.detach(), torch.ones(hi - lo, 1, B)
        l_c = batch_loss_grad(augmented_weights(W, b), W, ref.importance, torch.cat((x.mT, ones), 1),
                              relu=variant == "relu", grad_w=gw, grad_b=gb)
        torch.testing.assert_close(l_c, l_b, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(gw, gw_b, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(gb, gb_b, rtol=1e-4, atol=1e-6)


def test_threaded_chunks_do_not_change_the_numbers():
    """Each chunk draws from its own stream, so 1 and 3 threads give bit-identical steps."""
    m = ToyModels(40, 8, 3, feature_probability=torch.logspace(0, -2, 40), seed=0)
    out = []
    for threads in (1, 3):
        loss = m.sample_loss_and_grad(64, np.random.default_rng(5), chunk_elements=2 * 64 * 8, threads=threads)
        out.append((loss, m.W.grad.clone(), m.b.grad.clone()))
    for a, b in zip(*out):
        assert torch.equal(a, b)


def test_lane_states_are_distinct_seeded_streams():
    a = LaneStream.spawn_states(np.random.default_rng(0), 3)
    assert np.array_equal(a, LaneStream.spawn_states(np.random.default_rng(0), 3))    # seeded
    assert a.shape == (3, 4, 16) and bool((a[:, 3] == 13).all())       # counter 1 + 12 warm-up steps
    assert len({tuple(s) for s in a[:, :3].transpose(0, 2, 1).reshape(-1, 3)}) == 3 * 16
    draws = [LaneStream(s).fill(np.empty(4096, np.float32)) for s in a]
    assert max(abs(np.corrcoef(draws)[i, j]) for i in range(3) for j in range(3) if i != j) < 0.1
    assert all(abs(d.mean() - 0.5) < 0.02 for d in draws)
