"""Kernels vs their torch references on CUDA at real sizes, with timings (skipped without CUDA).

Run: ``pytest tests/gpu -m gpu -s`` (``-s`` prints the timing lines); ``make bench`` writes the
same comparisons to ``benchmarks/results/<device>.json``. Tolerances as in tests/unit/test_kernels.py
except the float32 toy kernel at batch 1024 (1e-4 relative: longer sums).
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

if torch.cuda.is_available():
    from workbench.backend import HAS_TRITON
    from workbench.koopman.snapshot_gram import snapshot_gram, snapshot_gram_torch
    from workbench.spectrum.gram_eigvalsh import eigvalsh_loop, gram_eigvalsh
    from workbench.spectrum.power_law import power_law_batch
    from workbench.spectrum.power_law_kernel import power_law_fit
    from workbench.superposition import ToyModels
    from workbench.superposition.triton_step import toy_loss_grad, toy_loss_grad_torch
else:  # pragma: no cover - collection on CPU machines
    HAS_TRITON = False

needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton not importable")


def _time(fn, repeats: int = 5) -> float:
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _report(name: str, t_kernel: float, t_ref: float) -> None:
    print(f"\n[{torch.cuda.get_device_name(0)}] {name}: kernel {t_kernel * 1e3:.3f} ms, "
          f"reference {t_ref * 1e3:.3f} ms, ratio {t_ref / t_kernel:.2f}x")


def _model_spectra(widths=(768, 768, 768, 3072, 1024, 512), seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(seed)
    out = []
    for k, w in enumerate(widths):
        W = torch.randn(2 * w, w, device="cuda", generator=g, dtype=torch.float64)
        ev = torch.linalg.eigvalsh(W.mT @ W)
        ev[-(k + 3):] *= torch.linspace(3, 30, k + 3, device="cuda", dtype=torch.float64)  # spikes
        out.append(ev)
    return out


@needs_triton
def test_power_law_kernel_real_sizes():
    spectra = _model_spectra()
    fit = power_law_fit(spectra, backend="triton")  # one launch, ragged
    for k, ev in enumerate(spectra):
        r = power_law_batch(ev[None])
        for key in ("alpha", "xmin", "ks_distance"):
            np.testing.assert_allclose(fit[key][k].item(), r[key][0].item(), rtol=1e-9, err_msg=key)
        assert int(fit["tail_size"][k]) == int(r["tail_size"][0])
    same = torch.stack(spectra[:3])
    t_k = _time(lambda: power_law_fit(same, backend="triton"))
    t_r = _time(lambda: power_law_batch(same))
    _report("power-law fit 3x768 eigenvalues", t_k, t_r)


@needs_triton
def test_toy_kernel_real_sizes():
    m = ToyModels(1024, 100, 20, feature_probability=0.05, importance=[0.95**i for i in range(100)],
                  seed=0).cuda()
    with torch.no_grad():
        m.b.normal_(0, 0.1)
    x = m.generate_batch(1024, torch.Generator(device="cuda").manual_seed(0))
    out = toy_loss_grad(m.W, m.b, x, m.importance, backend="triton")
    ref = toy_loss_grad_torch(m.W, m.b, x, m.importance)
    for name, o, r in zip(("loss", "grad_W", "grad_b"), out, ref):
        err = float((o - r).abs().max() / r.abs().max())
        assert err < 1e-4, (name, err)
    t_k = _time(lambda: toy_loss_grad(m.W, m.b, x, m.importance, backend="triton"))
    t_r = _time(lambda: m.loss_and_grad(x))
    _report("toy fwd+bwd 1024 inst x 1024 batch, F=100 H=20 (vs lens hand-fused torch)", t_k, t_r)


def test_gram_eigvalsh_real_sizes():
    g = torch.Generator(device="cuda").manual_seed(0)
    mats = [torch.randn(3072, 768, device="cuda", generator=g) for _ in range(12)]
    mats += [torch.randn(768, 768, device="cuda", generator=g) for _ in range(24)]
    out, ref = gram_eigvalsh(mats), eigvalsh_loop(mats)
    for o, r in zip(out, ref):
        torch.testing.assert_close(o, r, rtol=1e-8, atol=1e-8 * float(r[-1]))
    _report("ESDs of 36 layers (12x3072x768, 24x768x768) batched vs svdvals loop",
            _time(lambda: gram_eigvalsh(mats), 3), _time(lambda: eigvalsh_loop(mats), 3))


def test_snapshot_gram_real_sizes():
    X = torch.randn(256, 4_000_000, device="cuda")  # float32 snapshots, float64 Gram
    G = snapshot_gram(X)
    R = snapshot_gram_torch(X)
    torch.testing.assert_close(G, R, rtol=1e-10, atol=1e-8)
    _report("snapshot Gram 256 x 4e6 float64 (chunked vs whole)", _time(lambda: snapshot_gram(X)),
            _time(lambda: snapshot_gram_torch(X)))
