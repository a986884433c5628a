"""Weight spectra: ESDs, heavy-tail alpha, norms, ranks, conditioning and MP spikes of every layer.

Heavy-tailed self-regularisation metrics (Martin & Mahoney 2021, JMLR 22; the WeightWatcher tool)
plus rank and conditioning measures: effective rank (Roy & Vetterli 2007), stable rank, the rank of
W - W_0 over training (Boix-Adsera et al. 2023, "Transformers learn through gradual rank
increase") and the condition number (KappaTune: "The condition number as a scale-invariant proxy").

Conventions (weightwatcher 0.7.7, so the numbers agree with it):

- the ESD of a layer is the set of eigenvalues of W^T W for W of shape N×M with N >= M (W is
  transposed otherwise), i.e. squared singular values, **without** a 1/N normalisation. alpha and
  the ranks are scale-invariant; ``log_norm`` = log10 sum(lambda) = log10 ||W||_F², and
  ``log_spectral_norm`` = log10 lambda_max = log10 ||W||_2² are not.
- layers: ``nn.Linear`` (and any module whose class name contains "linear"), ``nn.Embedding``,
  Conv1d/Conv2d (one N×M slice per kernel position, eigenvalues pooled; Conv2d eigenvalues are
  multiplied by 1/2 — weightwatcher's default ``conv2d_norm``), 2-D "Conv1D" modules (GPT-2 style)
  as dense, and ``nn.MultiheadAttention``'s packed in-projection split into q, k, v (weightwatcher
  skips it; layer names ``<path>.in_proj_q`` etc.); bare ``W_*`` parameters of other modules
  (``workbench.grokking.transformer``: ``blocks.0.attn.W_Q`` with heads concatenated, ``W_E``, ...),
  which weightwatcher does not see. Norm layers, biases and other 1-D tensors are
  skipped by rule. A layer is skipped when M·rf < ``min_evals`` (8), M·rf > ``max_evals`` (15000)
  or N > ``max_N`` (50000), weightwatcher's limits.
- eigenvalues come from the Gram matrix (the smaller of W^T W, W W^T), formed in float32 by
  default (``precision="mixed"``; float64 straight away for near-square matrices, N < 1.1 M, whose
  smallest eigenvalue is near 0, and for small ones, N·M² < 2^24, where float32 saves nothing)
  and diagonalised in float64. On CPU each matrix is one task — its float64 Frobenius norm (which
  doubles as the NaN/Inf check), BLAS ``?syrk`` (half a GEMM's flops) read straight from the
  weight's memory through NumPy's matmul, then LAPACK ``dsyevd`` through ctypes
  (:mod:`workbench.spectrum.lapack`; ``numpy.linalg.eigvalsh`` keeps the GIL on small
  matrices and SciPy's wrappers hold it), all single-threaded and GIL-free — and the tasks run largest first on a persistent pool of
  ``torch.get_num_threads()`` threads: the tridiagonal reduction is BLAS-2 (memory) bound and
  scales poorly with BLAS threads, so matrices are spread over threads instead. On GPU, one
  batched product and ``torch.linalg.eigvalsh`` per group of equally shaped matrices. A layer is
  recomputed with a float64 Gram matrix where float32 cannot resolve it (lambda_min/lambda_max <
  100 eps_32, or the fitted xmin below 1e-3 lambda_max), and with float64 ``svdvals`` where even
  float64 cannot (lambda_min/lambda_max < 100 eps_64). ``log_norm`` uses the float64 Frobenius
  norm directly. "mixed" and "float64" alphas agree to ~5e-8 relative on MiniLM and ~3e-7 on
  random 768×3072 layers. The eigensolve stays float64: a float32 one is ~1.5x faster, but its
  error (~eps_32·lambda_max) moves alpha by up to 6e-4 on those random layers.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import xarray as xr
from threadpoolctl import ThreadpoolController
from torch import nn

from workbench.parallel import WorkerPool, torch_threads
from workbench.spectrum.lapack import eigvalsh as symmetric_eigvalsh
from workbench.spectrum.power_law import (
    EVALS_THRESH,
    effective_rank,
    fit_power_law,
    mp_spikes,
)
from workbench.validation import as_tensor, check_finite

__all__ = [
    "METRICS",
    "analyze",
    "esd",
    "fit_power_law",
    "layer_esds",
    "layer_matrices",
]

XMIN_FLOAT32_FLOOR = 1e-3  # "mixed": refit in float64 when xmin < this · lambda_max
SMALL_GRAM_FLOPS = 1 << 24  # "mixed": float64 Gram products below this N·M² (a few ms at most)
METRICS = ("alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "stable_rank",
           "effective_rank", "condition_number", "num_spikes", "xmin", "ks_distance")


@dataclass
class LayerMatrices:
    """The N×M (N >= M) matrices of one layer whose eigenvalues are pooled into one ESD."""

    name: str
    kind: str  # dense | embedding | conv1d | conv2d | attention_in
    mats: list[torch.Tensor]
    scale: float = 1.0  # eigenvalue multiplier (1/2 for Conv2d, weightwatcher's conv2d_norm)
    fro2: float = float("nan")  # ||W||_F^2 in float64 (before ``scale``)

    @property
    def n(self) -> int:
        return max(self.mats[0].shape)

    @property
    def m(self) -> int:
        return min(self.mats[0].shape)

    @property
    def rf(self) -> int:
        return len(self.mats)


def _kind(module: nn.Module) -> str | None:
    t = type(module).__name__.lower()
    if isinstance(module, nn.MultiheadAttention):
        return "attention_in"
    if isinstance(module, nn.Linear) or "linear" in t:
        return "dense"
    if isinstance(module, nn.Conv1d) or "conv1d" in t:
        return "conv1d"
    if isinstance(module, nn.Conv2d) or "conv2d" in t:
        return "conv2d"
    if isinstance(module, nn.Embedding) or "embedding" in t:
        return "embedding"
    return None


def _conv_slices(w: torch.Tensor) -> list[torch.Tensor]:
    """One (out, in) matrix per kernel position, as weightwatcher's ``conv2D_Wmats`` (channels
    last is detected when out + in >= the kernel dims)."""
    if w.ndim == 3:
        w = w[..., None]
    o, i, kh, kw = w.shape
    if o + i >= kh + kw:
        return [w[:, :, a, b] for a in range(kh) for b in range(kw)]
    return [w[a, b] for a in range(o) for b in range(i)]


def _fro2(w: torch.Tensor, block: int = 1 << 17) -> float:
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


def _check_weight(w: torch.Tensor, name: str, fro2: float | None = None) -> float:
    """Squared Frobenius norm in float64 (:func:`_fro2`, unless already known as ``fro2``, e.g. the
    trace of a float64 Gram matrix); it doubles as the NaN/Inf check (the element-wise check runs
    only to report a failure, naming the layer)."""
    fro2 = _fro2(w) if fro2 is None else fro2
    if not np.isfinite(fro2):
        check_finite(w, f"weight of layer {name!r}")
        raise ValueError(f"weight of layer {name!r} overflows float64 in its Frobenius norm")
    return fro2


def _raw_matrices(name: str, mod: nn.Module, weight_check: Callable[[torch.Tensor, str], float]
                  ) -> Iterator[LayerMatrices]:
    """Weights held as bare ``W_*`` parameters (TransformerLens-style models): 2-D as they are;
    3-D head-stacked ``(heads, a, b)`` as one matrix with the heads concatenated on the smaller
    side (W_Q ``(h, d_model, d_head)`` → ``(d_model, h·d_head)``, W_O ``(h, d_head, d_model)`` →
    ``(h·d_head, d_model)``)."""
    for pname, w in mod.named_parameters(recurse=False):
        if not pname.startswith("W_") or w.ndim not in (2, 3):
            continue
        w = w.detach()
        full = f"{name}.{pname}" if name else pname
        fro2 = weight_check(w, full)
        if w.ndim == 3:
            h, a, b = w.shape
            w = w.permute(1, 0, 2).reshape(a, h * b) if a > b else w.reshape(h * a, b)
        yield LayerMatrices(full, "parameter", [w], fro2=fro2)


def layer_matrices(model: nn.Module, *, split_attention: bool = True, check: bool = True) -> Iterator[LayerMatrices]:
    """Yield the weight matrices of every analysable layer of ``model`` in ``named_modules`` order.

    With ``check`` (default) each layer's float64 ``fro2`` is computed here and NaN/Inf weights
    raise ``ValueError`` naming the layer; ``check=False`` leaves ``fro2`` NaN for the caller
    (:func:`analyze` computes it inside its eigensolve tasks, in parallel).
    """
    weight_check = _check_weight if check else (lambda w, name: float("nan"))
    for name, mod in model.named_modules():
        kind = _kind(mod)
        if kind is None:
            yield from _raw_matrices(name, mod, weight_check)
            continue
        if kind == "attention_in":
            w = getattr(mod, "in_proj_weight", None)
            if not split_attention or w is None:
                continue
            for part, chunk in zip("qkv", w.detach().chunk(3, dim=0)):
                yield LayerMatrices(f"{name}.in_proj_{part}", kind, [chunk], fro2=weight_check(chunk, name))
            continue
        w = getattr(mod, "weight", None)
        if not isinstance(w, torch.Tensor) or w.ndim < 2:
            continue
        w = w.detach()
        fro2 = weight_check(w, name)
        if w.ndim == 2:
            yield LayerMatrices(name, "dense" if kind == "conv1d" else kind, [w], fro2=fro2)
        elif kind in ("conv1d", "conv2d") and w.ndim in (3, 4):
            yield LayerMatrices(name, kind, _conv_slices(w), 0.5 if kind == "conv2d" else 1.0, fro2)


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    """threadpoolctl's view of the loaded BLAS libraries (inspecting them costs ~1 ms; do it once)."""
    return ThreadpoolController()


def _gram_np(w: np.ndarray) -> np.ndarray:
    """The smaller Gram matrix of ``w`` (N×M). NumPy's matmul calls BLAS ``?syrk`` for ``a.T @ a``
    (N·M² flops, half a GEMM's) and, unlike SciPy's f2py BLAS/LAPACK wrappers, releases the GIL, so
    the pool's threads really run in parallel."""
    return w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T


def _evals_np(m: torch.Tensor, dtype: torch.dtype, name: str | None) -> tuple[torch.Tensor, float]:
    """Eigenvalues (ascending, float64) of the smaller Gram matrix of ``m``: the product in
    ``dtype`` (:func:`_gram_np`), LAPACK ``dsyevd`` (eigenvalues only: ``dsytrd`` + ``dsterf``) in
    float64 through :func:`workbench.spectrum.lapack.eigvalsh`, which releases the GIL (see
    the module docstring for why not float32). Given the layer's ``name``, the matrix's float64
    ``||m||_F²`` is returned with the eigenvalues (NaN without a name), checked by
    :func:`_check_weight`: for a float64 Gram matrix its trace (trace WᵀW = ||W||_F², no second pass
    over ``m``), else :func:`_fro2`."""
    g = _gram_np(m.to(dtype).numpy()).astype(np.float64, copy=False)  # a fresh array: overwritable
    if name is None:
        fro2 = float("nan")
    else:
        fro2 = _check_weight(m, name, float(np.trace(g)) if dtype == torch.float64 else None)
    return torch.from_numpy(symmetric_eigvalsh(g, overwrite=True)), fro2


def _evals_cpu(mats: list[torch.Tensor], dtypes: list[torch.dtype], names: list[str | None],
               threads: int) -> list[tuple[torch.Tensor, float]]:
    """:func:`_evals_np` of every matrix, one single-threaded BLAS/LAPACK call chain per matrix, the
    matrices spread over ``threads`` persistent threads (BLAS and LAPACK release the GIL), largest
    first. The tridiagonal reduction is BLAS-2 bound and scales poorly with BLAS threads (and
    collapses under load), so parallelising across matrices is the faster split."""
    order = sorted(range(len(mats)), key=lambda k: -mats[k].shape[0] * mats[k].shape[1] * min(mats[k].shape))
    out: list[tuple[torch.Tensor, float] | None] = [None] * len(mats)
    with _blas_controller().limit(limits=1, user_api="blas"):
        with WorkerPool(threads if threads > 1 and len(mats) > 1 else 0) as pool:
            for k, r in zip(order, pool.map(lambda k: _evals_np(mats[k], dtypes[k], names[k]), order)):
                out[k] = r
    return out  # type: ignore[return-value]


def _evals_torch(mats: list[torch.Tensor], dtypes: list[torch.dtype], names: list[str | None],
                 device: torch.device) -> list[tuple[torch.Tensor, float]]:
    """The same on a GPU: :func:`workbench.spectrum.gram_eigvalsh` (one batched Gram product and float64
    ``torch.linalg.eigvalsh`` per group of equally shaped matrices) for each Gram dtype in ``dtypes``."""
    from workbench.spectrum.gram_eigvalsh import gram_eigvalsh

    fro2 = [float("nan") if n is None else _check_weight(m, n) for m, n in zip(mats, names)]
    out: list[tuple[torch.Tensor, float] | None] = [None] * len(mats)
    for dtype in set(dtypes):
        idx = [k for k, d in enumerate(dtypes) if d == dtype]
        for k, ev in zip(idx, gram_eigvalsh([mats[k] for k in idx], gram_dtype=dtype, device=device)):
            out[k] = (ev, fro2[k])
    return out  # type: ignore[return-value]


def _gram_evals(mats: list[torch.Tensor], dtypes: list[torch.dtype], device: torch.device,
                threads: int | None = None, names: list[str | None] | None = None) -> list[tuple[torch.Tensor, float]]:
    """Eigenvalues (ascending, float64) of the smaller Gram matrix of each matrix, the Gram product
    in the matrix's entry of ``dtypes``, with the float64 ``||m||_F²`` of the matrices that have a
    layer name in ``names`` (NaN for the others): :func:`_evals_cpu` on CPU, :func:`_evals_torch`
    elsewhere."""
    names = names or [None] * len(mats)
    if device.type == "cpu":
        return _evals_cpu([m.detach().cpu() for m in mats], dtypes, names, threads or torch.get_num_threads())
    return _evals_torch(mats, dtypes, names, device)


def _exact_evals(lay: LayerMatrices, device: torch.device, svd: bool = False) -> torch.Tensor:
    """float64 Gram route for one layer; float64 SVD where even that cannot resolve lambda_min."""
    ps = [] if svd else [ev for ev, _ in _gram_evals(lay.mats, [torch.float64] * lay.rf, device)]
    if svd or _ill_conditioned(ps, torch.float64):
        ps = [torch.linalg.svdvals(m.to(device=device, dtype=torch.float64)) ** 2 for m in lay.mats]
    return torch.sort(torch.cat(ps).clamp(min=0) * lay.scale).values


def _all_evals(layers: list[LayerMatrices], precision: str, device: torch.device,
               threads: int | None = None) -> tuple[list[torch.Tensor], list[bool]]:
    """ESD of each layer by the Gram route.

    ``precision="mixed"`` forms the Gram matrices in float32 and recomputes in
    float64 the layers whose lambda_min / lambda_max is below 100 eps_32 (unresolved at float32);
    ``"float64"`` does everything in float64. Returns the ascending eigenvalues and whether each
    layer is float64-exact.
    """
    # "mixed": float32, except for near-square matrices (N/M < 1.1), whose smallest eigenvalue
    # sits near 0 (Marchenko-Pastur lower edge (1 - Q^-1/2)^2) and needs float64 anyway, and small
    # ones (N·M² < SMALL_GRAM_FLOPS), where float32 saves under a millisecond
    def dtype_of(m: torch.Tensor) -> torch.dtype:
        n, k = max(m.shape), min(m.shape)
        fast = precision == "mixed" and n >= 1.1 * k and n * k * k >= SMALL_GRAM_FLOPS
        return torch.float32 if fast else torch.float64

    flat = [(li, m) for li, lay in enumerate(layers) for m in lay.mats]
    # layers without a Frobenius norm yet get it (and their NaN/Inf check) inside the same tasks
    names = [layers[li].name if np.isnan(layers[li].fro2) else None for li, _ in flat]
    evs = _gram_evals([m for _, m in flat], [dtype_of(m) for _, m in flat], device, threads, names)
    parts: list[list[torch.Tensor]] = [[] for _ in layers]
    fro2 = [0.0] * len(layers)
    for (li, _), (e, f) in zip(flat, evs):
        parts[li].append(e)
        fro2[li] += f
    for lay, f in zip(layers, fro2):
        if np.isnan(lay.fro2):
            lay.fro2 = f
    out, exact = [], []
    for lay, ps in zip(layers, parts):
        was64 = all(dtype_of(m) == torch.float64 for m in lay.mats)
        if _ill_conditioned(ps, torch.float64 if was64 else torch.float32):
            out.append(_exact_evals(lay, device, svd=was64))
            exact.append(True)
        else:
            out.append(torch.sort(torch.cat(ps).clamp(min=0) * lay.scale).values)
            exact.append(was64)
    return out, exact


def _ill_conditioned(parts: list[torch.Tensor], dtype: torch.dtype) -> bool:
    """True if lambda_min / lambda_max < 100 eps: a Gram matrix in ``dtype`` cannot resolve the
    smallest eigenvalues (their absolute error is ~eps · lambda_max)."""
    eps = torch.finfo(dtype).eps
    return any(float(p[0]) < 100 * eps * float(p[-1]) for p in parts)


def esd(W, *, precision: str = "float64", device: str | torch.device = "cpu") -> xr.DataArray:
    """Empirical spectral density of one weight matrix: the eigenvalues of W^T W.

    Parameters
    ----------
    W : array-like, shape (N, M)
        Weight matrix; transposed if N < M so the M = min(N, M) eigenvalues of W^T W (the squared
        singular values, no 1/N normalisation — weightwatcher's convention) are returned.
    precision : "float64" (default) | "mixed"
        "mixed" forms W^T W in float32 (falling back to float64 where that cannot resolve
        lambda_min); eigenvalues are always computed in float64.
    device : torch device for the computation.

    Returns
    -------
    xr.DataArray (eig,), ascending, attrs N, M.
    """
    _precision(precision)
    w = as_tensor(W, "W", ndim=2, min_size=1)
    if not w.is_floating_point():
        w = w.to(torch.float64)
    lay = LayerMatrices("W", "dense", [w])
    ev = _all_evals([lay], precision, torch.device(device))[0][0]
    return xr.DataArray(ev.cpu().numpy(), dims=("eig",), name="eigenvalue",
                        attrs={"N": lay.n, "M": lay.m, "definition": "eigenvalues of W^T W (N >= M)"})


def _precision(precision: str) -> str:
    if precision not in ("mixed", "float64"):
        raise ValueError(f"precision must be 'mixed' or 'float64', got {precision!r}")
    return precision


def _select(model: nn.Module, layers: Sequence[str] | None, min_evals: int, max_evals: int,
            max_n: int, split_attention: bool) -> list[LayerMatrices]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if next(iter(model.parameters()), None) is None:
        raise ValueError("model is empty: it has no parameters")
    found = [lay for lay in layer_matrices(model, split_attention=split_attention, check=False)
             if min_evals <= lay.m * lay.rf <= max_evals and lay.n <= max_n]
    if layers is not None:
        names = {lay.name for lay in found}
        missing = [n for n in layers if n not in names]
        if missing:
            raise ValueError(f"layers not found or skipped by the size rules: {missing}; "
                             f"analysable: {sorted(names)}")
        found = [lay for lay in found if lay.name in set(layers)]
    if not found:
        raise ValueError(f"model has no layer with a weight matrix of at least min_evals={min_evals} "
                         "eigenvalues (Linear, Embedding, Conv1d/2d, MultiheadAttention)")
    return found


def analyze(model: nn.Module, *, layers: Sequence[str] | None = None, min_evals: int = 8,
            max_evals: int = 15000, max_N: int = 50000, precision: str = "mixed",
            device: str | torch.device = "cpu", mp_fit: bool = True, keep_evals: bool = False,
            split_attention: bool = True) -> xr.Dataset:
    """Spectral metrics of every analysable layer of ``model`` (dim ``layer`` = module path).

    Parameters
    ----------
    model : nn.Module
    layers : module paths to keep (default: all analysable layers).
    min_evals, max_evals, max_N : weightwatcher's size rules (skip layers with fewer / more
        eigenvalues M·rf, or a larger dimension N above ``max_N``).
    precision : "mixed" (default): Gram matrices in float32, eigenvalues in float64, and a float64
        recomputation of the layers where float32 cannot resolve lambda_min (condition number) or
        the fitted xmin is below 1e-3 lambda_max (alpha then depends on small eigenvalues);
        "float64": everything in float64.
    device : where the eigenvalues and fits are computed ("cuda" batches all layers on the GPU).
    mp_fit : fit the Marchenko–Pastur bulk and count spikes (``num_spikes``); NaN when False.
    keep_evals : add ``eigenvalues`` (layer, eig), NaN-padded, for plotting ESDs.

    Returns
    -------
    xr.Dataset with dim ``layer`` and variables
        ``alpha`` — power-law exponent of the ESD tail (Martin & Mahoney 2021, Sec. 5; Clauset et
        al. 2009 eq. 3.1), ``xmin``, ``ks_distance``, ``tail_size``;
        ``alpha_weighted`` = alpha · log10 lambda_max; ``log_norm`` = log10 ||W||_F²;
        ``log_spectral_norm`` = log10 lambda_max; ``stable_rank`` = ||W||_F² / ||W||_2²;
        ``effective_rank`` = exp(entropy of sigma/sum sigma) (Roy & Vetterli 2007);
        ``condition_number`` = sigma_max / sigma_min; ``num_spikes`` above the fitted MP bulk edge
        plus Tracy–Widom margin, ``sigma_mp``, ``mp_softrank``; coords ``layer_type``, ``N``,
        ``M``, ``rf``, ``num_evals``; and model-level means ``alpha_mean``,
        ``alpha_weighted_mean``, ``log_norm_mean``, ``stable_rank_mean`` (no dims).
    """
    _precision(precision)
    dev = torch.device(device)
    threads = torch.get_num_threads()
    # on CPU the fits and metrics are many small element-wise ops: one thread avoids OpenMP
    # synchronisation (which collapses on a loaded machine); the Gram products and the eigen
    # solves still use ``threads`` (see _gram_evals)
    with torch_threads(1 if dev.type == "cpu" else threads):
        return _analyze(model, layers, min_evals, max_evals, max_N, precision, dev, mp_fit,
                        keep_evals, split_attention, threads)


def _analyze(model, layers, min_evals, max_evals, max_N, precision, dev, mp_fit, keep_evals,
             split_attention, threads) -> xr.Dataset:
    lays = _select(model, layers, min_evals, max_evals, max_N, split_attention)
    evals, exact = _all_evals(lays, precision, dev, threads=threads)
    n = len(lays)
    out = {k: np.full(n, np.nan) for k in (*METRICS, "tail_size", "sigma_mp", "mp_softrank")}
    _fit_into(out, evals, range(n), threads)
    redo = [i for i in range(n) if not exact[i] and not out["xmin"][i] >= XMIN_FLOAT32_FLOOR * float(evals[i][-1])]
    for i in redo:  # alpha depends on eigenvalues that float32 Gram matrices resolve too coarsely
        evals[i] = _exact_evals(lays[i], dev)
    _fit_into(out, evals, redo, threads)
    for i, (lay, e) in enumerate(zip(lays, evals)):
        fro2 = lay.scale * lay.fro2
        lam_max = float(e[-1])
        out["log_norm"][i] = np.log10(fro2)
        out["log_spectral_norm"][i] = np.log10(lam_max)
        out["stable_rank"][i] = fro2 / lam_max
        out["alpha_weighted"][i] = out["alpha"][i] * np.log10(lam_max)
        out["effective_rank"][i] = float(effective_rank(e))
        out["condition_number"][i] = np.sqrt(lam_max / float(e[0])) if float(e[0]) > 0 else np.inf
        if mp_fit:
            mp = mp_spikes(e, lay.n / lay.m, lay.m)
            out["num_spikes"][i], out["sigma_mp"][i], out["mp_softrank"][i] = (
                mp["num_spikes"], mp["sigma_mp"], mp["mp_softrank"])
    coords = {"layer": [lay.name for lay in lays], "layer_type": ("layer", [lay.kind for lay in lays]),
              "N": ("layer", [lay.n for lay in lays]), "M": ("layer", [lay.m for lay in lays]),
              "rf": ("layer", [lay.rf for lay in lays]),
              "num_evals": ("layer", [e.numel() for e in evals])}
    ds = xr.Dataset({k: ("layer", v) for k, v in out.items()}, coords=coords)
    ds["tail_size"] = ds["tail_size"].astype(np.int64)
    for k in ("alpha", "alpha_weighted", "log_norm", "stable_rank"):
        ds[f"{k}_mean"] = ds[k].mean()
    if keep_evals:
        width = max(e.numel() for e in evals)
        pad = np.full((n, width), np.nan)
        for i, e in enumerate(evals):
            pad[i, : e.numel()] = e.cpu().numpy()
        ds["eigenvalues"] = (("layer", "eig"), pad)
    ds.attrs = {"method": "ESD of W^T W (no 1/N), Gram route, batched; weightwatcher conventions",
                "reference": "Martin & Mahoney 2021 JMLR 22; Clauset et al. 2009; Roy & Vetterli 2007",
                "precision": precision, "eval_thresh": EVALS_THRESH}
    return ds


def _fit_into(out: dict[str, np.ndarray], evals: list[torch.Tensor], which, threads: int = 1) -> None:
    """Power-law fits of layers ``which`` through :func:`workbench.kernels.power_law_fit`: one Triton
    launch for all layers on CUDA; on the CPU the batched torch reference (grouped by length), the
    layers dealt round-robin to ``threads`` threads (rows are fitted independently, so the numbers
    are those of one call; torch releases the GIL in its kernels)."""
    from workbench.spectrum.power_law_kernel import power_law_fit

    idx = list(which)
    if not idx:
        return
    cpu = evals[idx[0]].device.type == "cpu"
    parts = [idx[k::threads] for k in range(min(threads, len(idx)))] if cpu else [idx]

    def fit(part: list[int]) -> None:
        res = power_law_fit([evals[i] for i in part], thresh=EVALS_THRESH)
        for k in ("alpha", "xmin", "ks_distance", "tail_size"):
            out[k][part] = res[k].cpu().numpy()

    with WorkerPool(len(parts) if len(parts) > 1 else 0) as pool:
        list(pool.map(fit, parts))


def layer_esds(model: nn.Module, layers: Sequence[str] | None = None, **kwargs) -> xr.Dataset:
    """``analyze(model, keep_evals=True)``: metrics plus ``eigenvalues`` (layer, eig) for plotting."""
    return analyze(model, layers=layers, keep_evals=True, **kwargs)
