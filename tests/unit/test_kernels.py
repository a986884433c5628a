"""Kernels vs their torch references. Triton kernels run in Triton's CPU interpreter here
(``TRITON_INTERPRET=1`` is set by tests/conftest.py when CUDA is absent); tests/gpu repeats
these checks at real sizes on CUDA.

Tolerances: float64 kernels (power-law fit) agree with the reference to 1e-10 relative (the kernel
uses exp/log where torch uses expm1 — ~1 ulp differences) and pick the same xmin; the float32 toy
kernel agrees with autograd to 1e-5 relative to the largest entry (different summation order).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.backend import HAS_TRITON, interpreter_enabled
from workbench.koopman.snapshot_gram import snapshot_gram, snapshot_gram_torch
from workbench.spectrum.gram_eigvalsh import eigvalsh_loop, gram_eigvalsh
from workbench.spectrum.power_law import power_law_batch
from workbench.spectrum.power_law_kernel import power_law_fit
from workbench.superposition import ToyModels
from workbench.superposition.triton_step import toy_loss_grad, toy_loss_grad_torch

# the interpreter evaluates masked-out lanes too (e.g. log of padding), as numpy with warnings
pytestmark = [pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")]
needs_triton = pytest.mark.skipif(
    not HAS_TRITON or not (torch.cuda.is_available() or interpreter_enabled()),
    reason="triton not importable, or neither CUDA nor TRITON_INTERPRET=1 (set by tests/conftest.py)")
DEV = "cuda" if torch.cuda.is_available() else "cpu"
PL_KEYS = ("alpha", "xmin", "ks_distance")


def _spectra(seed: int) -> torch.Tensor:
    """Rows: Marchenko–Pastur bulk, bulk + spikes, Pareto tail (alpha=2.5), exponential, with zeros."""
    g = torch.Generator().manual_seed(seed)
    n = 64
    W = torch.randn(2, 3 * n, n, generator=g, dtype=torch.float64)
    mp = torch.linalg.eigvalsh(W.mT @ W)
    mp[1, -4:] *= torch.tensor([5.0, 8.0, 13.0, 30.0], dtype=torch.float64)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    pareto = (1 - u) ** (-1 / 1.5)  # density ∝ x^-2.5 on [1, ∞)
    expo = -torch.log(torch.rand(n, generator=g, dtype=torch.float64))
    with_zeros = torch.rand(n, generator=g, dtype=torch.float64) + 0.1
    with_zeros[:10] = 0.0
    return torch.stack([mp[0], mp[1], pareto, expo, with_zeros])


def _assert_fit_equal(a: dict, r: dict) -> None:
    for k in PL_KEYS:
        np.testing.assert_allclose(a[k].cpu().numpy(), r[k].cpu().numpy(), rtol=1e-10, atol=1e-12,
                                   equal_nan=True, err_msg=k)
    for k in ("tail_size", "n_fit"):
        assert torch.equal(a[k].cpu(), r[k].cpu()), k


def _ks_naive(x: np.ndarray, alpha: np.ndarray, first: int) -> np.ndarray:
    """Clauset et al. 2009 eq. 3.9 by a double loop (independent of both implementations)."""
    n = len(x)
    out = np.full(n, np.nan)
    for i in range(first, n - 1):
        j = np.arange(i, n)
        cdf = 1 - (x[j] / x[i]) ** (1 - alpha[i])
        out[i] = np.max(np.abs(cdf - (j - i) / (n - i)))
    return out


# --- power-law fit -----------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 97, 1 << 17])
def test_ks_all_cpu_matches_double_loop(chunk):
    # the reference's blocked-triangle KS step, one candidate per block up to a single block
    from workbench.spectrum.power_law import ks_distances
    x = torch.sort(_spectra(0), dim=-1).values
    keep = x > 1e-5
    first = (~keep).sum(-1)
    logx = torch.log(torch.where(keep, x, torch.ones_like(x)))
    n = x.shape[1]
    n_tail = (n - torch.arange(n)).to(torch.float64).expand_as(x)
    s = torch.flip(torch.cumsum(torch.flip(logx, [-1]), -1), [-1]) - n_tail * logx
    alpha = 1 + n_tail / s
    ks = ks_distances(logx, alpha, n_tail, chunk_elems=chunk).numpy()
    for r in range(x.shape[0]):
        f = int(first[r])
        ref = _ks_naive(x[r].numpy(), alpha[r].numpy(), f)
        np.testing.assert_allclose(ks[r, f:n - 1], ref[f:n - 1], rtol=1e-10, atol=1e-13)


@needs_triton
def test_ks_kernel_matches_double_loop():
    from workbench.spectrum.power_law_kernel import ks_distances_triton
    x = torch.sort(_spectra(0), dim=-1).values.to(DEV)
    keep = x > 1e-5
    first = (~keep).sum(-1)
    logx = torch.log(torch.where(keep, x, torch.ones_like(x)))
    n = x.shape[1]
    s = torch.flip(torch.cumsum(torch.flip(logx, [-1]), -1), [-1]) - (n - torch.arange(n, device=DEV)) * logx
    alpha = 1 + (n - torch.arange(n, device=DEV)) / s
    ks = ks_distances_triton(logx, alpha, first, block_i=16, block_j=16).cpu().numpy()
    for r in range(x.shape[0]):
        f = int(first[r])
        ref = _ks_naive(x[r].cpu().numpy(), alpha[r].cpu().numpy(), f)
        np.testing.assert_allclose(ks[r, f:n - 1], ref[f:n - 1], rtol=1e-10, atol=1e-13)


@needs_triton
@pytest.mark.parametrize("seed", [0, 1])
def test_power_law_triton_matches_reference(seed):
    ev = _spectra(seed)
    r = power_law_batch(ev)
    a = power_law_fit(ev.to(DEV), backend="triton")
    _assert_fit_equal(a, r)
    assert torch.isfinite(a["alpha"]).all() and (a["alpha"] > 1).all()
    # sanity against the known answer: the Pareto row was drawn with alpha = 2.5
    assert abs(float(a["alpha"][2]) - 2.5) < 0.6


@needs_triton
def test_power_law_triton_small_and_degenerate_rows():
    g = torch.Generator().manual_seed(3)
    small = torch.rand(4, 12, generator=g, dtype=torch.float64) * 10  # n < 20: small-sample rule
    small[1] = 2.0  # constant spectrum: no admissible xmin, alpha = 1, D = 1 (degenerate)
    small[2, :11] = 0.0  # one fitted eigenvalue: NaN
    small[3, :5] = 1e-7  # below the threshold
    r = power_law_batch(small)
    a = power_law_fit(small.to(DEV), backend="triton")
    _assert_fit_equal(a, r)
    assert math.isnan(float(a["alpha"][2])) and float(a["alpha"][1]) == 1.0


@needs_triton
def test_power_law_ragged_one_launch_matches_per_layer():
    ev = _spectra(4)
    rows = [ev[0], ev[2, :40], ev[3, :25], ev[4, 5:], ev[1, :15]]
    a = power_law_fit([r.to(DEV) for r in rows], backend="triton")
    for k, row in enumerate(rows):
        r = power_law_batch(row[None])
        _assert_fit_equal({key: v[k:k + 1] for key, v in a.items()}, r)


def test_power_law_dispatch_cpu_uses_reference():
    ev = _spectra(5)
    a = power_law_fit(ev)  # auto on CPU -> torch reference
    r = power_law_batch(ev)
    for k in PL_KEYS:
        assert torch.equal(a[k], r[k])
    rows = [ev[0, :30], ev[1], ev[2, :30]]
    ragged = power_law_fit(rows, backend="torch")
    for k, row in enumerate(rows):
        r = power_law_batch(row[None])
        assert torch.equal(ragged["alpha"][k:k + 1], r["alpha"])
        assert torch.equal(ragged["xmin"][k:k + 1], r["xmin"])


def test_power_law_validation():
    with pytest.raises(ValueError, match="backend"):
        power_law_fit(torch.rand(3, 30), backend="cuda")
    with pytest.raises(ValueError, match="non-negative"):
        power_law_fit(-torch.rand(3, 30))
    with pytest.raises(ValueError, match="thresh"):
        power_law_fit(torch.rand(3, 30), thresh=float("nan"))
    with pytest.raises(ValueError):
        power_law_fit(torch.tensor([[1.0, float("nan"), 2.0]]))


# --- toy models --------------------------------------------------------------------------------
def _toy(variant: str, n_inst: int = 3, F: int = 20, H: int = 5) -> tuple[ToyModels, torch.Tensor]:
    m = ToyModels(n_inst, F, H, feature_probability=[0.1, 0.5, 1.0][:n_inst],
                  importance=[0.9**i for i in range(F)], variant=variant, seed=2)
    with torch.no_grad():
        m.b.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    return m, m.generate_batch(70, torch.Generator().manual_seed(1))  # 70: not a block multiple


@needs_triton
@pytest.mark.parametrize("variant", ["relu", "linear"])
def test_toy_kernel_matches_autograd_and_lens(variant):
    m, x = _toy(variant)
    ref = toy_loss_grad_torch(m.W, m.b, x, m.importance, relu=variant == "relu")
    out = toy_loss_grad(m.W.to(DEV), m.b.to(DEV), x.to(DEV), m.importance.to(DEV), variant=variant,
                        backend="triton")
    for name, o, r in zip(("loss", "grad_W", "grad_b"), out, ref):
        assert o.shape == r.shape
        err = float((o.cpu() - r).abs().max() / r.abs().max())
        assert err < 1e-5, (name, err)
    lens_loss = m.loss_and_grad(x)  # the superposition lens' hand-derived backward
    torch.testing.assert_close(out[0].cpu(), lens_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out[1].cpu(), m.W.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out[2].cpu(), m.b.grad, rtol=1e-4, atol=1e-6)


def test_toy_reference_matches_lens_and_validates():
    m, x = _toy("relu", n_inst=2)
    loss, gW, _ = toy_loss_grad(m.W, m.b, x, m.importance)  # CPU: torch reference
    torch.testing.assert_close(loss, m.loss_and_grad(x), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gW, m.W.grad, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="variant"):
        toy_loss_grad(m.W, m.b, x, m.importance, variant="abs")
    with pytest.raises(ValueError, match="x must have shape"):
        toy_loss_grad(m.W, m.b, x[:, :, :5], m.importance)
    with pytest.raises(ValueError, match="b must have shape"):
        toy_loss_grad(m.W, m.b[:1], x, m.importance)


@needs_triton
def test_toy_kernel_size_limit():
    W = torch.zeros(1, 4, 300)
    with pytest.raises(ValueError, match="n_features"):
        toy_loss_grad(W, torch.zeros(1, 300), torch.zeros(1, 8, 300), torch.ones(1, 300), backend="triton")


# --- batched spectra, snapshot Gram -------------------------------------------------------------
def test_gram_eigvalsh_matches_svd_loop():
    g = torch.Generator().manual_seed(0)
    mats = [torch.randn(40, 12, generator=g), torch.randn(12, 40, generator=g),
            torch.randn(40, 12, generator=g), torch.randn(9, 9, generator=g, dtype=torch.float64)]
    out, ref = gram_eigvalsh(mats), eigvalsh_loop(mats)
    for o, r in zip(out, ref):
        assert o.dtype == torch.float64 and o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=1e-10, atol=1e-10 * float(r[-1]))
    out32 = gram_eigvalsh(mats, gram_dtype=torch.float32, max_batch_bytes=1)  # one matrix per batch
    torch.testing.assert_close(out32[0][-5:], ref[0][-5:], rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="Triton"):
        gram_eigvalsh(mats, backend="triton")


def test_snapshot_gram_chunked_matches_reference():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 1001, generator=g)  # float32 input, float64 Gram
    G = snapshot_gram(X, chunk_bytes=8 * 30 * 64)  # 16 chunks
    ref = X.double().numpy() @ X.double().numpy().T
    assert G.dtype == torch.float64
    np.testing.assert_allclose(G.numpy(), ref, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(G, snapshot_gram_torch(X), rtol=1e-12, atol=1e-10)
    X[3, 7] = float("nan")
    with pytest.raises(ValueError):
        snapshot_gram(X)
    with pytest.raises(ValueError, match="backend"):
        snapshot_gram(torch.ones(3, 4), backend="triton")


@needs_triton
@pytest.mark.parametrize("variant", ["relu", "linear"])
def test_toy_models_train_step_through_the_triton_kernel_matches_cpu(variant):
    """The lens' own call site: ToyModels.loss_and_grad(backend="triton") == the CPU path, x = 0 term included."""

    model = ToyModels(6, 5, 2, feature_probability=torch.linspace(0.05, 0.5, 6)[:, None].expand(6, 5),
                      importance=0.9 ** torch.arange(5.0), variant=variant, seed=1)
    x = model.generate_batch(16, torch.Generator().manual_seed(0), nonempty=True)
    ref = model.loss_and_grad(x, nonempty=True)
    ref_w, ref_b = model.W.grad.clone(), model.b.grad.clone()
    got = model.loss_and_grad(x, nonempty=True, backend="triton")
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.W.grad, ref_w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.b.grad, ref_b, rtol=1e-5, atol=1e-6)
