"""sparse_mix: forward and both gradients equal embedding_bag's autograd (float64, exact pattern)."""
import pytest
import torch
import torch.nn.functional as F

from workbench.grokking.sparse_mix import sparse_mix


def _case(n=257, k=6, rows=40, width=33, seed=0):
    g = torch.Generator().manual_seed(seed)
    # strictly increasing ids per example, some table rows never used (empty bags in the backward)
    idx = torch.stack([torch.randperm(rows - 5, generator=g)[:k].sort().values for _ in range(n)])
    w = torch.rand(n, k, generator=g, dtype=torch.float64)
    table = torch.randn(rows, width, generator=g, dtype=torch.float64)
    return idx, w, table, torch.randn(n, width, generator=g, dtype=torch.float64)


def _grads(fn, idx, w, table, upstream):
    w, table = w.clone().requires_grad_(), table.clone().requires_grad_()
    out = fn(idx, w, table)
    out.backward(upstream)
    return out.detach(), w.grad, table.grad


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_embedding_bag_forward_and_gradients(seed):
    idx, w, table, up = _case(seed=seed)

    def ref(i, ww, t):
        return F.embedding_bag(i, t, per_sample_weights=ww, mode="sum")

    for got, want in zip(_grads(sparse_mix, idx, w, table, up), _grads(ref, idx, w, table, up)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # rows nobody gathers get an exactly zero gradient
    assert torch.count_nonzero(_grads(sparse_mix, idx, w, table, up)[2][-5:]) == 0


def test_known_answer_and_no_grad_path():
    idx = torch.tensor([[0, 2], [1, 2]])
    w = torch.tensor([[1.0, 2.0], [3.0, 0.5]], dtype=torch.float64)
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    want = torch.tensor([[3.0, 2.0], [0.5, 3.5]], dtype=torch.float64)
    torch.testing.assert_close(sparse_mix(idx, w, table), want)
    w_, t_ = w.clone().requires_grad_(), table.clone().requires_grad_()
    sparse_mix(idx, w_, t_).sum().backward()
    # d/dw[n, j] = sum of table row idx[n, j]; d/dT[r] = total weight gathering row r
    torch.testing.assert_close(w_.grad, torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(t_.grad, torch.tensor([[1.0, 1.0], [3.0, 3.0], [2.5, 2.5]], dtype=torch.float64))
