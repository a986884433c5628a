"""Learning words in groups: CP-ALS on known ranks (Strassen, planted, task tensors) and the learned tensor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.grokking.cp_rank import (
    cp_als,
    cp_rank,
    matrix_multiplication_tensor,
    multilinear_rank,
)
from workbench.grokking.li2 import Li2MLP
from workbench.grokking.words import bilinear_tensor, centre_modes, task_tensor


def test_strassen_rank_7_is_reached_and_rank_6_is_not():
    """Floating-point criterion (cp_rank module docstring): reachable = relative error ≤ 1e-6;
    unreachable below the border rank (7 for ⟨2,2,2⟩, Landsberg 2006) = stuck ≥ 1e-2, here at 1/√8."""
    T = matrix_multiplication_tensor(2)
    assert T.shape == (4, 4, 4) and T.sum() == 8
    err7, (A, B, C) = cp_als(T, 7, restarts=10, tol=1e-10)
    assert err7 < 1e-9
    np.testing.assert_allclose(np.einsum("ir,jr,kr->ijk", A, B, C), T, atol=1e-8)
    err6, _ = cp_als(T, 6, restarts=10, max_iter=1500)
    assert err6 > 1e-2 and err6 == pytest.approx(8 ** -0.5, rel=1e-3)


def test_planted_rank_is_recovered():
    rng = np.random.default_rng(0)
    A, B, C = (rng.standard_normal((n, 5)) for n in (9, 10, 11))
    T = np.einsum("ir,jr,kr->ijk", A, B, C)
    assert multilinear_rank(T) == (5, 5, 5)
    ds = cp_rank(T, restarts=3)
    assert int(ds.cp_rank) == 5 and float(ds.error.sel(r=5)) < 1e-6
    noisy = T + 1e-3 * rng.standard_normal(T.shape) * np.linalg.norm(T) / np.sqrt(T.size)
    assert int(cp_rank(noisy, tol=1e-2, restarts=3).cp_rank) == 5  # a looser tol reads through noise
    with pytest.raises(ValueError, match="3-tensor"):
        cp_als(np.zeros((2, 2)), 1)


def test_task_tensor_ranks_add_up_over_irreps():
    """Centred 1[ab = c]: one term per real irrep class, ⟨d,d,d⟩-like blocks — S_3: sign (1) + the 2-d
    irrep (Strassen's 7) = 8; Z_5: two frequencies of real rank 3 each = 6."""
    for group, rank in (("S3", 8), ("Z5", 6)):
        T = task_tensor(group)
        assert T.dims == ("a", "b", "c") and list(T.a.values) == list(T.c.values)
        ds = cp_rank(T, restarts=3)
        assert int(ds.cp_rank) == rank and float(ds.error.sel(r=rank - 1)) > 0.1


def test_learned_tensor_of_the_x2_model_is_its_k_term_cp():
    """For σ = x², the centred outputs are exactly 2 Σ_k V̄_ck ū_k[a] v̄_k[b]."""
    model = Li2MLP(6, 4, seed=0).double()
    T = bilinear_tensor(model, "S3")
    W = model.W.weight.detach().reshape(4, 2, 6)
    u, v = (W[:, i] - W[:, i].mean(1, keepdim=True) for i in (0, 1))
    V = model.V.weight.detach()
    V = V - V.mean(0, keepdim=True)
    np.testing.assert_allclose(T.values, 2 * torch.einsum("ka,kb,ck->abc", u, v, V).numpy(), atol=1e-10)
    raw = bilinear_tensor(model, "S3", centred=False)
    np.testing.assert_allclose(centre_modes(raw.values), T.values, atol=1e-12)
    assert int(cp_rank(T, restarts=3).cp_rank) <= 4
