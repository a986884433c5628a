"""Kernels: ours vs reference, cost vs size, and (on CUDA) Triton vs torch with fraction of peak.

CPU rows (the kernels dispatch to their torch references there, so the comparisons are the
algorithms the lenses use against the straightforward way):

- ``power-law fit``: vectorised fit over all xmin (``kernels.power_law_fit``) vs a per-candidate
  loop (alpha and KS for one xmin at a time, like ``powerlaw``/weightwatcher), one layer.
- ``spectrum scaling``: ESD (batched Gram ``eigvalsh``) + fit, vs ``svdvals`` + the loop fit, for
  W of shape 2w × w at growing width w (log-log plot).
- ``dmd scaling``: the Koopman lens' ``DMD(method="gram")`` vs ``method="svd"`` as features and as
  snapshots grow (log-log plot).
- ``toy step``: the superposition lens' hand-derived ``loss_and_grad`` (its CPU path: Numba kernels
  through the hidden layer, ``kernels.toy_cpu``; and ``backend="torch"``, the torch reference
  through M = WᵀW) and ``torch.compile`` of the autograd step vs plain autograd
  (``kernels.toy_loss_grad_torch``).
- ``grokking compile`` (full runs only; compiling takes minutes on 2 cores): the transformer's
  fast-path training step under ``torch.compile`` vs eager.

CUDA rows: Triton vs the torch reference on the same device, absolute times, and the fraction of
the device's datasheet peak (float64/float32 FLOP/s, memory bandwidth) the kernel reaches.

Writes ``benchmarks/results/scaling.png`` (``scaling-quick.png`` with ``--quick``).
``python -m benchmarks.run --only kernels [--quick]``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.harness import compare
from workbench.spectrum.gram_eigvalsh import eigvalsh_loop, gram_eigvalsh
from workbench.spectrum.power_law_kernel import power_law_fit
from workbench.superposition import ToyModels
from workbench.superposition.triton_step import toy_loss_grad, toy_loss_grad_torch

RESULTS = Path(__file__).parent / "results"

# NVIDIA datasheet peaks (dense, no sparsity): float64 and float32 without tensor cores, HBM B/s.
PEAKS = {
    "H100 PCIe": {"fp64": 25.6e12, "fp32": 51.2e12, "bytes": 2.0e12},
    "H100": {"fp64": 33.5e12, "fp32": 66.9e12, "bytes": 3.35e12},  # SXM5
    "H200": {"fp64": 33.5e12, "fp32": 66.9e12, "bytes": 4.8e12},
    "A100": {"fp64": 9.7e12, "fp32": 19.5e12, "bytes": 2.0e12},
}
KS_FLOP_PER_PAIR = 40  # sub, mul, exp + log (Kahan expm1, ~15 each in libdevice), div, sub, abs, max


def device_peaks() -> dict | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    for key, peaks in PEAKS.items():  # "H100 PCIe" before "H100"
        if key in name:
            return peaks
    return None


def fit_loop(evals: np.ndarray, thresh: float = 1e-5) -> tuple[float, float, float]:
    """Per-candidate power-law fit: for each xmin, alpha (Clauset eq. 3.1) and KS (eq. 3.9)."""
    x = np.sort(evals[evals > thresh])
    best = (np.inf, np.nan, np.nan)
    for i in range(len(x) - 1):
        tail = x[i:]
        n = len(tail)
        alpha = 1 + n / np.sum(np.log(tail / x[i]))
        cdf = 1 - (tail / x[i]) ** (1 - alpha)
        d = np.max(np.abs(cdf - np.arange(n) / n))
        if alpha > 1 and d < best[0]:
            best = (d, alpha, x[i])
    return best


def _spectrum_rows(widths: list[int], repeats: int) -> tuple[list[dict], dict]:
    rows, curve = [], {"width": [], "ours": [], "reference": []}
    g = torch.Generator().manual_seed(0)
    for w in widths:
        W = torch.randn(2 * w, w, generator=g)
        ours = lambda W=W: power_law_fit(gram_eigvalsh([W]))
        ref = lambda W=W: fit_loop(eigvalsh_loop([W])[0].numpy())
        row = compare("spectrum scaling", f"W {2 * w}x{w}: ESD + power-law fit",
                      ("batched Gram eigvalsh + vectorised fit", ours),
                      ("svdvals + per-candidate loop fit", ref), repeats=repeats)
        rows.append(row)
        curve["width"].append(w)
        curve["ours"].append(row["t_candidate_s"])
        curve["reference"].append(row["t_reference_s"])
    W = torch.randn(2 * widths[-1], widths[-1], generator=g, dtype=torch.float64)
    ev = torch.linalg.eigvalsh(W.mT @ W)
    rows.append(compare("power-law fit", f"one layer, {ev.numel()} eigenvalues, all xmin candidates",
                        ("kernels.power_law_fit (torch, vectorised)", lambda: power_law_fit(ev)),
                        ("per-candidate loop (numpy)", lambda: fit_loop(ev.numpy())), repeats=repeats))
    return rows, curve


def _dmd_rows(features: list[int], snapshots: list[int], repeats: int) -> tuple[list[dict], dict]:
    from workbench.koopman import DMD
    rows, curves = [], {"features": {"n": [], "gram": [], "svd": []},
                        "snapshots": {"n": [], "gram": [], "svd": []}}
    g = torch.Generator().manual_seed(0)
    m0, n0 = snapshots[len(snapshots) // 2], features[len(features) // 2]
    for axis, sizes in (("features", features), ("snapshots", snapshots)):
        for s in sizes:
            m, n = (m0, s) if axis == "features" else (s, n0)
            X = torch.randn(m, n, generator=g, dtype=torch.float64)
            rank = min(10, m - 2)
            row = compare(f"dmd scaling ({axis})", f"{m} snapshots x {n} features, rank {rank}",
                          ("DMD(method='gram')", lambda X=X, r=rank: DMD(r, method="gram", device="cpu").fit(X)),
                          ("DMD(method='svd')", lambda X=X, r=rank: DMD(r, method="svd", device="cpu").fit(X)),
                          repeats=repeats, axis=axis)
            rows.append(row)
            curves[axis]["n"].append(s)
            curves[axis]["gram"].append(row["t_candidate_s"])
            curves[axis]["svd"].append(row["t_reference_s"])
    return rows, curves


def _toy_rows(n_inst: int, repeats: int, with_compile: bool) -> list[dict]:
    m = ToyModels(n_inst, 100, 20, feature_probability=0.05, importance=[0.95**i for i in range(100)])
    x = m.generate_batch(1024, torch.Generator().manual_seed(0))
    ref = ("autograd (kernels.toy_loss_grad_torch)", lambda: toy_loss_grad_torch(m.W, m.b, x, m.importance))
    wl = f"{n_inst} instances x batch 1024, F=100, H=20, loss + grads"
    rows = [compare("toy step (hand-fused)", wl, ("lens loss_and_grad (Numba)", lambda: m.loss_and_grad(x)),
                    ref, repeats=repeats),
            compare("toy step (hand-fused, torch only)", wl, ("lens loss_and_grad(backend='torch')",
                                                  lambda: m.loss_and_grad(x, backend="torch")), ref, repeats=repeats)]
    if with_compile:
        t0 = time.perf_counter()
        compiled = torch.compile(toy_loss_grad_torch)
        compiled(m.W, m.b, x, m.importance)
        t_compile = time.perf_counter() - t0
        rows.append(compare("toy step (torch.compile)", wl, ("torch.compile(autograd)",
                                             lambda: compiled(m.W, m.b, x, m.importance)), ref,
                            repeats=repeats, notes=f"compile time {t_compile:.1f}s (not in the timing)"))
    return rows


def _grokking_compile_row(repeats: int) -> list[dict]:
    from workbench.grokking.transformer import Transformer
    from workbench.tasks.modular import ModularTask
    task = ModularTask(p=113, op="add", frac=0.3, seed=0)
    x, y = task.train_x, task.train_y
    rows = []
    models = {k: Transformer(113, seed=0) for k in ("eager", "compiled")}

    def trainer(model, fn):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(fn(x).double(), y).backward()
            opt.step()
        return step

    eager = trainer(models["eager"], models["eager"].forward_fast)
    t0 = time.perf_counter()
    comp = trainer(models["compiled"], torch.compile(models["compiled"].forward_fast))
    comp()
    t_compile = time.perf_counter() - t0
    rows.append(compare("grokking compile", "p=113, 3830 examples, full-batch AdamW step (fast path)",
                        ("torch.compile(forward_fast)", comp), ("eager forward_fast", eager),
                        repeats=repeats, notes=f"compile time {t_compile:.1f}s (not in the timing)"))
    return rows


def _gpu_rows(repeats: int, quick: bool) -> list[dict]:
    from workbench.backend import HAS_TRITON
    from workbench.spectrum.power_law import power_law_batch
    if not HAS_TRITON:
        return []
    peaks = device_peaks()
    rows = []
    g = torch.Generator(device="cuda").manual_seed(0)
    n_layers, w = (8, 512) if quick else (48, 1024)
    W = torch.randn(n_layers, 2 * w, w, device="cuda", generator=g, dtype=torch.float64)
    ev = torch.linalg.eigvalsh(W.mT @ W)
    row = compare("power-law fit (GPU)", f"{n_layers} layers x {w} eigenvalues, all xmin",
                  ("Triton KS kernel", lambda: power_law_fit(ev, backend="triton")),
                  ("torch reference on CUDA", lambda: power_law_batch(ev)), repeats=repeats)
    pairs = n_layers * w * (w + 1) / 2
    row["pairs_per_s"] = pairs / row["t_candidate_s"]
    if peaks:
        row["fraction_of_fp64_peak"] = pairs * KS_FLOP_PER_PAIR / row["t_candidate_s"] / peaks["fp64"]
    rows.append(row)
    n_inst = 256 if quick else 4096
    m = ToyModels(n_inst, 100, 20, feature_probability=0.05, seed=0).cuda()
    x = m.generate_batch(1024, torch.Generator(device="cuda").manual_seed(0))
    row = compare("toy step (GPU)", f"{n_inst} instances x batch 1024, F=100, H=20",
                  ("Triton fused fwd+bwd", lambda: toy_loss_grad(m.W, m.b, x, m.importance, backend="triton")),
                  ("lens hand-fused torch", lambda: m.loss_and_grad(x)), repeats=repeats)
    flops, nbytes = 8.0 * n_inst * 1024 * 20 * 100, 4.0 * n_inst * 1024 * 100
    if peaks:
        row["fraction_of_fp32_peak"] = flops / row["t_candidate_s"] / peaks["fp32"]
        row["fraction_of_bandwidth"] = nbytes / row["t_candidate_s"] / peaks["bytes"]
    rows.append(row)
    return rows


def _slope(n: list, t: list) -> float:
    """Log-log slope of the largest three sizes: cost ~ size^slope."""
    return float(np.polyfit(np.log(n[-3:]), np.log(t[-3:]), 1)[0])


def plot_scaling(spectrum: dict, dmd: dict, path: Path) -> Path | None:
    """Log-log cost curves (matplotlib, Agg); returns the path, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:  # pragma: no cover
        return None
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    ax = axes[0]
    w = spectrum["width"]
    ax.loglog(w, spectrum["ours"], "o-",
              label=f"Gram eigvalsh + vectorised fit (slope {_slope(w, spectrum['ours']):.1f})")
    ax.loglog(w, spectrum["reference"], "s--",
              label=f"svdvals + loop fit (slope {_slope(w, spectrum['reference']):.1f})")
    ax.set(xlabel="layer width w (W is 2w x w)", ylabel="seconds", title="weight spectrum of one layer")
    for ax, axis, label in ((axes[1], "features", "features (snapshots fixed)"),
                            (axes[2], "snapshots", "snapshots (features fixed)")):
        c = dmd[axis]
        ax.loglog(c["n"], c["gram"], "o-", label=f"DMD gram route (slope {_slope(c['n'], c['gram']):.1f})")
        ax.loglog(c["n"], c["svd"], "s--", label=f"DMD svd route (slope {_slope(c['n'], c['svd']):.1f})")
        ax.set(xlabel=label, ylabel="seconds", title=f"DMD vs {axis}")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(quick: bool = False) -> list[dict]:
    repeats = 3 if quick else 7
    widths = [32, 64, 128, 256] if quick else [64, 128, 256, 512, 1024]
    features = [1_000, 4_000, 16_000] if quick else [1_000, 10_000, 100_000, 300_000]
    snapshots = [25, 50, 100] if quick else [25, 50, 100, 200, 400]
    rows, spectrum = _spectrum_rows(widths, repeats)
    dmd_rows, dmd = _dmd_rows(features, snapshots, repeats)
    rows += dmd_rows
    rows += _toy_rows(16 if quick else 256, repeats, with_compile=not quick)
    if not quick:
        rows += _grokking_compile_row(repeats)
    if torch.cuda.is_available():
        rows += _gpu_rows(repeats, quick)
    plot = plot_scaling(spectrum, dmd, RESULTS / ("scaling-quick.png" if quick else "scaling.png"))
    if plot is not None and rows:
        rows[0]["plot"] = str(plot.relative_to(RESULTS.parent.parent))
    return rows
