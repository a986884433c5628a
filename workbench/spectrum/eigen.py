"""Eigenvalues of W^T W for every layer: Gram route, float32/float64 choice, exact fallbacks.

The ESD of a layer is the set of eigenvalues of W^T W for W of shape N×M with N >= M (W is
transposed otherwise), i.e. squared singular values, **without** a 1/N normalisation
(weightwatcher 0.7.7; Martin & Mahoney 2021, JMLR 22, Sec. 2).

They come from the smaller Gram matrix, formed in float32 by default (``precision="mixed"``;
float64 straight away for near-square matrices, N < 1.1 M, whose smallest eigenvalue is near the
Marchenko–Pastur lower edge (1 - Q^-1/2)² ≈ 0, and for small ones, N·M² < 2^24, where float32
saves nothing) and diagonalised in float64. On CPU each layer is one task — the matrices read from
their reader, their float64 Frobenius norm (which doubles as the NaN/Inf check), BLAS ``?syrk``
(half a GEMM's flops) through NumPy's matmul, then LAPACK ``dsyevd`` through ctypes
(:mod:`workbench.spectrum.lapack`; ``numpy.linalg.eigvalsh`` keeps the GIL on small matrices),
all single-threaded and GIL-free — and the tasks run largest first on a :class:`WorkerPool`: the
tridiagonal reduction is BLAS-2 (memory) bound and scales poorly with BLAS threads, so layers are
spread over threads instead. On GPU, one batched product and ``torch.linalg.eigvalsh`` per group
of equally shaped matrices (:mod:`workbench.spectrum.gram_eigvalsh`). A layer is recomputed with
a float64 Gram matrix where float32 cannot resolve it (lambda_min/lambda_max < 100 eps_32), and
with float64 ``svdvals`` where even float64 cannot (< 100 eps_64). The eigensolve stays float64:
a float32 one is ~1.5x faster, but its error (~eps_32·lambda_max) moves alpha by up to 6e-4 on
random 768×3072 layers.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from workbench.parallel import WorkerPool
from workbench.spectrum.gram_eigvalsh import gram_eigvalsh
from workbench.spectrum.lapack import eigvalsh as symmetric_eigvalsh
from workbench.spectrum.layers import LayerMatrices, to_matrices
from workbench.spectrum.weights import TensorReader
from workbench.validation import check_finite

__all__ = ["LayerEvals", "NonFiniteWeights", "exact_layer_evals", "frobenius2", "gram_dtype",
           "layer_evals", "layers_evals", "matrix_evals", "matrix_evals_torch", "single_threaded_blas"]

SMALL_GRAM_FLOPS = 1 << 24  # "mixed": float64 Gram products below this N·M² (a few ms at most)
GPU_BATCH_BYTES = 1 << 30  # "mixed" on a GPU: layers read and solved together up to this size


class NonFiniteWeights(ValueError):
    """A layer's weight holds NaN or Inf; ``layer`` names it."""

    def __init__(self, message: str, layer: str):
        super().__init__(message)
        self.layer = layer


@dataclass
class LayerEvals:
    """Ascending float64 eigenvalues of one layer (times its ``scale``), its float64
    ``||W||_F²`` (before ``scale``), and whether they are float64-exact."""

    evals: torch.Tensor
    fro2: float
    exact: bool


def frobenius2(w: torch.Tensor, block: int = 1 << 17) -> float:
    """||W||_F² accumulated in float64. On CPU in blocks of ``block`` entries: each is copied into
    one reused float64 buffer (squares of float32 entries are then exact) and summed by BLAS
    ``ddot`` — about 9x faster than ``vector_norm(dtype=float64)``, which casts the whole tensor."""
    if w.device.type != "cpu" or w.dtype not in (torch.float32, torch.float64):
        return float(torch.linalg.vector_norm(w, dtype=torch.float64)) ** 2
    x = w.reshape(-1).numpy()
    buf = np.empty(min(block, x.size))
    total = 0.0
    for k in range(0, x.size, block):
        y = buf[: min(block, x.size - k)]
        np.copyto(y, x[k:k + block])
        total += float(np.dot(y, y))
    return total


def _checked_fro2(w: torch.Tensor, name: str, fro2: float | None = None) -> float:
    """``fro2`` (or :func:`frobenius2`), which doubles as the NaN/Inf check: the element-wise
    check runs only to report a failure, naming the layer."""
    fro2 = frobenius2(w) if fro2 is None else fro2
    if np.isfinite(fro2):
        return fro2
    remedy = "; pass on_nonfinite='skip' to leave such layers out (they are then reported as skipped)"
    try:
        check_finite(w, f"weight of layer {name!r}")
    except ValueError as exc:
        raise NonFiniteWeights(f"{exc}{remedy}", name) from None
    raise NonFiniteWeights(f"weight of layer {name!r} overflows float64 in its Frobenius norm{remedy}", name)


def gram_dtype(shape: Sequence[int], precision: str) -> torch.dtype:
    """"mixed": float32 Gram products, except for near-square (N < 1.1 M) and small
    (N·M² < ``SMALL_GRAM_FLOPS``) matrices; "float64": always float64."""
    n, k = max(shape), min(shape)
    fast = precision == "mixed" and n >= 1.1 * k and n * k * k >= SMALL_GRAM_FLOPS
    return torch.float32 if fast else torch.float64


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    """threadpoolctl's view of the loaded BLAS libraries (inspecting them costs ~1 ms; do it once)."""
    return ThreadpoolController()


def single_threaded_blas():
    """Context manager: BLAS/LAPACK on one thread inside (the layers are the parallelism)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def matrix_evals(m: torch.Tensor, dtype: torch.dtype, name: str) -> tuple[torch.Tensor, float]:
    """Ascending float64 eigenvalues of the smaller Gram matrix of ``m`` (the product in ``dtype``,
    NumPy's matmul → BLAS ``?syrk``, which releases the GIL; then LAPACK ``dsyevd``) and the
    checked float64 ``||m||_F²``: for a float64 Gram matrix its trace (trace WᵀW = ||W||_F², no
    second pass over ``m``), else :func:`frobenius2`."""
    w = m.detach().cpu().to(dtype).numpy()
    g = (w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T).astype(np.float64, copy=False)
    fro2 = _checked_fro2(m, name, float(np.trace(g)) if dtype == torch.float64 else None)
    return torch.from_numpy(symmetric_eigvalsh(g, overwrite=True)), fro2


def matrix_evals_torch(mats: list[torch.Tensor], dtypes: list[torch.dtype], names: list[str],
                       device: torch.device) -> list[tuple[torch.Tensor, float]]:
    """The same on any torch device, batched: :func:`gram_eigvalsh` (one Gram product and float64
    ``torch.linalg.eigvalsh`` per group of equally shaped matrices) for each Gram dtype."""
    fro2 = [_checked_fro2(m, n) for m, n in zip(mats, names)]
    out: list[tuple[torch.Tensor, float] | None] = [None] * len(mats)
    for dtype in set(dtypes):
        idx = [k for k, d in enumerate(dtypes) if d == dtype]
        for k, ev in zip(idx, gram_eigvalsh([mats[k] for k in idx], gram_dtype=dtype, device=device)):
            out[k] = (ev, fro2[k])
    return out  # type: ignore[return-value]


def _ill_conditioned(parts: list[torch.Tensor], dtype: torch.dtype) -> bool:
    """True if lambda_min / lambda_max < 100 eps: a Gram matrix in ``dtype`` cannot resolve the
    smallest eigenvalues (their absolute error is ~eps · lambda_max)."""
    eps = torch.finfo(dtype).eps
    return any(float(p[0]) < 100 * eps * float(p[-1]) for p in parts)


def _pooled(parts: list[torch.Tensor], scale: float) -> torch.Tensor:
    return torch.sort(torch.cat([p.cpu() for p in parts]).clamp(min=0) * scale).values


def _exact(mats: list[torch.Tensor], name: str, scale: float, device: torch.device, svd: bool) -> torch.Tensor:
    """float64 Gram route; float64 SVD where that cannot resolve lambda_min (or at once: ``svd``)."""
    if not svd:
        if device.type == "cpu":
            ps = [matrix_evals(m, torch.float64, name)[0] for m in mats]
        else:
            ps = [e for e, _ in matrix_evals_torch(mats, [torch.float64] * len(mats), [name] * len(mats), device)]
    if svd or _ill_conditioned(ps, torch.float64):
        ps = [torch.linalg.svdvals(m.to(device=device, dtype=torch.float64)) ** 2 for m in mats]
    return _pooled(ps, scale)


def _finish(lay: LayerMatrices, mats: list[torch.Tensor], results: list[tuple[torch.Tensor, float]],
            dtypes: list[torch.dtype], device: torch.device) -> LayerEvals:
    """Pool a layer's eigenvalues, recomputing exactly where its Gram dtype could not resolve them."""
    parts, fro2 = [e for e, _ in results], sum(f for _, f in results)
    was64 = all(d == torch.float64 for d in dtypes)
    if _ill_conditioned(parts, torch.float64 if was64 else torch.float32):
        return LayerEvals(_exact(mats, lay.name, lay.scale, device, svd=was64), fro2, True)
    return LayerEvals(_pooled(parts, lay.scale), fro2, was64)


def layer_evals(reader: TensorReader, lay: LayerMatrices, precision: str) -> LayerEvals:
    """One layer on the CPU: read its tensor, :func:`matrix_evals` of each of its matrices, pooled."""
    mats = to_matrices(reader.tensor(lay.key).detach(), lay.part)
    dtypes = [gram_dtype(m.shape, precision) for m in mats]
    results = [matrix_evals(m, d, lay.name) for m, d in zip(mats, dtypes)]
    return _finish(lay, mats, results, dtypes, torch.device("cpu"))


def exact_layer_evals(reader: TensorReader, lay: LayerMatrices, device: str | torch.device = "cpu") -> torch.Tensor:
    """One layer's eigenvalues by the float64 Gram route (float64 SVD where that cannot resolve
    lambda_min), its tensor read again."""
    mats = to_matrices(reader.tensor(lay.key).detach(), lay.part)
    return _exact(mats, lay.name, lay.scale, torch.device(device), svd=False)


def layer_evals_or_skip(reader: TensorReader, lay: LayerMatrices, precision: str, skip_nonfinite: bool
                        ) -> LayerEvals | NonFiniteWeights:
    """:func:`layer_evals`, or with ``skip_nonfinite`` the :class:`NonFiniteWeights` it raised, to report."""
    try:
        return layer_evals(reader, lay, precision)
    except NonFiniteWeights as exc:
        if skip_nonfinite:
            return exc
        raise


def _layers_evals_cpu(reader, lays, precision, pool, skip_nonfinite, on_done):
    order = sorted(range(len(lays)), key=lambda k: -lays[k].cost)
    out: list = [None] * len(lays)
    with single_threaded_blas():
        for k, res in zip(order, pool.map(lambda k: layer_evals_or_skip(reader, lays[k], precision, skip_nonfinite), order)):
            out[k] = res
            on_done()
    return out


def _solve_batch_torch(batch: list[tuple[LayerMatrices, list[torch.Tensor]]], precision: str,
                      device: torch.device) -> list[LayerEvals]:
    """Layers solved together: one :func:`matrix_evals_torch` call for all their matrices."""
    flat = [(b, m) for b, ms in batch for m in ms]
    dtypes = [gram_dtype(m.shape, precision) for _, m in flat]
    res = matrix_evals_torch([m for _, m in flat], dtypes, [b.name for b, _ in flat], device)
    out, k = [], 0
    for b, ms in batch:
        out.append(_finish(b, ms, res[k:k + len(ms)], dtypes[k:k + len(ms)], device))
        k += len(ms)
    return out


def _layers_evals_torch(reader, lays, precision, device, skip_nonfinite, on_done):
    """Batches of layers up to ``GPU_BATCH_BYTES`` of weights: read, checked, then solved together."""
    out: dict[int, LayerEvals | NonFiniteWeights] = {}
    batch: list[tuple[int, list[torch.Tensor]]] = []
    for i, lay in enumerate(lays):
        mats = [m.to(device) for m in to_matrices(reader.tensor(lay.key).detach(), lay.part)]
        try:
            for m in mats:
                _checked_fro2(m, lay.name)
            batch.append((i, mats))
        except NonFiniteWeights as exc:
            if not skip_nonfinite:
                raise
            out[i] = exc
        on_done()
        if batch and (i + 1 == len(lays) or sum(lays[j].rf * lays[j].n * lays[j].m * 4
                                                 for j, _ in batch) >= GPU_BATCH_BYTES):
            out.update(zip((j for j, _ in batch), _solve_batch_torch([(lays[j], ms) for j, ms in batch],
                                                                     precision, device)))
            batch = []
    return [out[i] for i in range(len(lays))]


def layers_evals(reader: TensorReader, lays: list[LayerMatrices], precision: str, device: torch.device,
                 pool: WorkerPool | None = None, skip_nonfinite: bool = False,
                 on_done: Callable[[], object] = lambda: None) -> list[LayerEvals | NonFiniteWeights]:
    """:class:`LayerEvals` of every layer: on CPU largest first on the threads of ``pool`` (the
    caller's thread without one); batched on other devices. A layer with NaN/Inf weights raises
    :class:`NonFiniteWeights`, or with ``skip_nonfinite`` gives that exception in its place.
    ``on_done()`` is called once per layer (progress bars)."""
    if device.type == "cpu":
        return _layers_evals_cpu(reader, lays, precision, pool or WorkerPool(0), skip_nonfinite, on_done)
    return _layers_evals_torch(reader, lays, precision, device, skip_nonfinite, on_done)
