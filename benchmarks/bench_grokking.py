"""Grokking lens: ms/step of the transformer's fast path vs the naive full-sequence model.

One training step = forward + float64 cross-entropy + backward + AdamW, full batch (Nanda et al.
2023: p = 113, train fraction 0.3 → 3,830 examples). The reference is
:func:`workbench.grokking.transformer.naive_logits` (every position's q/k/v, attention, MLP and
unembedding, like the paper's code). Achieved GFLOP/s count each variant's own matmul work
(fwd + 2× for backward) and are set against a square-matmul peak measured in the same run.

``python -m benchmarks.run --only grokking [--quick]``.
"""
from __future__ import annotations

import time
import warnings

import torch
import torch.nn.functional as F

from benchmarks.harness import compare
from workbench.grokking.transformer import Transformer, naive_logits
from workbench.tasks.modular import ModularTask


def matmul_peak_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 GFLOP/s of an ``n × n`` matmul (2n³ flops)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def step_flops(model: Transformer, batch: int, fast: bool) -> float:
    """Matmul flops of one training step (forward MACs × 2 flops × 3 for forward + backward)."""
    B, T, D, M, H, p = batch, 3, model.d_model, model.d_mlp, model.n_heads, model.p
    if fast:
        W = M + p  # width of the [W_in | W_U] read-out
        macs = B * 3 * H * W + B * M * p + 2 * (p + 1) * H * D * W  # mixing, W_out·W_U, tables
    else:
        macs = B * T * (4 * D * D + 2 * D * M + D * p) + 2 * B * H * T * T * (D // H)
    return 2.0 * macs * 3


def hooked_transformer(p: int) -> torch.nn.Module | None:
    """TransformerLens' ``HookedTransformer`` with the paper's config (1 layer, d_model 128, 4 heads of
    32, ReLU MLP 512, no LayerNorm), or ``None`` if ``transformer-lens<4`` is not installed
    (``pip install -e ".[bench]"``; 4.x removed HookedTransformer)."""
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError:
        return None
    cfg = HookedTransformerConfig(n_layers=1, d_model=128, d_head=32, n_heads=4, d_mlp=512, d_vocab=p + 1,
                                  d_vocab_out=p, n_ctx=3, act_fn="relu", normalization_type=None, seed=0,
                                  device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return HookedTransformer(cfg)


def _trainer(model: Transformer, task: ModularTask, fn):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
    x, y = task.train_x, task.train_y

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(fn(x).double(), y).backward()
        opt.step()
    return step


def run(quick: bool = False) -> list[dict]:
    p, repeats = (53, 3) if quick else (113, 15)
    task = ModularTask(p=p, op="add", frac=0.3, seed=0)
    fast_model, naive_model = Transformer(p, seed=0), Transformer(p, seed=0)
    fast_step = _trainer(fast_model, task, fast_model.forward_fast)
    naive_step = _trainer(naive_model, task, lambda x: naive_logits(naive_model, x))
    peak = matmul_peak_gflops(512 if quick else 1024)
    row = compare("grokking_train_step", f"p={p} frac=0.3 full batch ({len(task.train_x)} ex), AdamW",
                  ("fast path (vocab tables)", fast_step), ("naive full-sequence", naive_step),
                  repeats=repeats, warmup=2)
    n = len(task.train_x)
    row["ms_per_step_fast"] = 1e3 * row["t_candidate_s"]
    row["ms_per_step_naive"] = 1e3 * row["t_reference_s"]
    row["gflops_fast"] = step_flops(fast_model, n, True) / row["t_candidate_s"] / 1e9
    row["gflops_naive"] = step_flops(naive_model, n, False) / row["t_reference_s"] / 1e9
    row["matmul_peak_gflops"] = peak
    row["est_40k_steps_min"] = 40_000 * row["t_candidate_s"] / 60
    row["notes"] = (f"fast {row['ms_per_step_fast']:.1f} ms/step ({row['gflops_fast']:.0f} GFLOP/s), naive "
                    f"{row['ms_per_step_naive']:.1f} ms/step ({row['gflops_naive']:.0f} GFLOP/s), matmul peak "
                    f"{peak:.0f} GFLOP/s; 40k steps ≈ {row['est_40k_steps_min']:.1f} min (train steps only).")
    rows = [row]
    hooked = hooked_transformer(p)
    if hooked is None:
        row["notes"] += " transformer-lens<4 not installed, so no HookedTransformer row."
    else:
        from importlib.metadata import version

        tl_step = _trainer(hooked, task, lambda x: hooked(x)[:, -1])
        rows.append(compare("grokking_train_step", f"p={p} frac=0.3 full batch ({n} ex), AdamW",
                            ("fast path (vocab tables)", fast_step),
                            (f"TransformerLens {version('transformer-lens')} HookedTransformer", tl_step),
                            repeats=repeats, warmup=2))
    return rows
