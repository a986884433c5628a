"""Grokking progress measures in the Fourier basis of Z_p (Nanda et al. 2023, Secs. 4-5).

A network that has grokked modular addition embeds each token ``t`` as ``cos(w_k t), sin(w_k t)``
for a few *key frequencies* ``k`` (``w_k = 2πk/p``), and its logits are a sum of
``cos(w_k (a + b − c))`` terms. The measures here read that circuit out of any model with an
embedding ``W_E`` (the transformer and the MLP):

- :func:`fourier_basis` — orthonormal basis of functions on Z_p;
- :func:`embedding_fourier_norms`, :func:`neuron_logit_fourier_norms` — norm per frequency;
- :func:`key_frequencies` — the frequencies that carry the embedding (rule documented there);
- :func:`fourier_2d`, :func:`logit_fourier_2d`, :func:`neuron_frequency_clusters` — 2-D Fourier views;
- :func:`restricted_loss`, :func:`excluded_loss` — loss with only / without the key directions;
- :func:`gini`, :func:`weight_norm`; and :func:`grokking_probe`, all of them for ``train.fit``.

Every function is pure (no I/O, no global state) and returns labelled xarray objects.

References
----------
.. [1] Nanda, Chan, Lieberum, Smith, Steinhardt (2023). Progress measures for grokking via
   mechanistic interpretability. ICLR. arXiv:2301.05217.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from workbench.tasks.modular import is_prime
from workbench.validation import as_tensor, check_range

PAPER = "Nanda et al. 2023, arXiv:2301.05217"


MAX_P = 8191  # the Fourier basis is p × p float64: 0.5 GiB at this p


def _check_p(p: Any) -> int:
    if isinstance(p, (int, np.integer)) and p > MAX_P:  # before the primality test (trial division)
        raise ValueError(f"p={p} is too large: the Fourier basis is p×p float64; at most p={MAX_P}")
    if not isinstance(p, (int, np.integer)) or p < 3 or not is_prime(int(p)):
        raise ValueError(f"p must be an odd prime >= 3 (the modulus of Z_p), got {p!r}")
    return int(p)


def _check_model_p(model: nn.Module, p: Any) -> int:
    """``p`` checked, and equal to the model's own ``p`` when it has one (a model of another p
    would index out of range or return wrongly shaped measures)."""
    p = _check_p(p)
    own = getattr(model, "p", None)
    if own is not None and own != p:
        raise ValueError(f"the model was built for p={own}, not p={p}; pass p={own}")
    return p


def n_freqs(p: int) -> int:
    """Number of non-constant frequencies ``(p - 1) / 2`` of Z_p for odd ``p``."""
    return (_check_p(p) - 1) // 2


def fourier_basis(p: int) -> xr.DataArray:
    """Orthonormal Fourier basis of functions on Z_p (rows = basis vectors).

    Rows: the constant ``1/sqrt(p)``, then ``cos(w_k x)``, ``sin(w_k x)`` for ``k = 1..(p-1)/2``,
    ``w_k = 2πk/p``, each scaled to unit norm ([1], Sec. 4.1). ``B @ B.T = I``.

    Returns
    -------
    xr.DataArray, dims ``(basis, residue)``, shape ``(p, p)``, float64; coords ``basis`` (labels
    like ``"cos 3"``), ``freq`` and ``kind`` on ``basis``.
    """
    p = _check_p(p)
    B, names, freqs, kinds = _basis(p)
    return xr.DataArray(B.numpy().copy(), dims=("basis", "residue"),
                        coords={"basis": list(names), "freq": ("basis", list(freqs)), "kind": ("basis", list(kinds)),
                                "residue": np.arange(p)}, attrs={"reference": PAPER})


@lru_cache(maxsize=8)
def _basis(p: int) -> tuple[torch.Tensor, tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """The basis matrix of :func:`fourier_basis` and its row labels, built once per ``p`` (the
    probe uses it ~7 times per call). Callers must not modify the tensor in place."""
    x = torch.arange(p, dtype=torch.float64)
    rows, names, freqs, kinds = [torch.ones(p, dtype=torch.float64)], ["const"], [0], ["const"]
    for k in range(1, n_freqs(p) + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
        names += [f"cos {k}", f"sin {k}"]
        freqs += [k, k]
        kinds += ["cos", "sin"]
    B = torch.stack(rows)
    return B / B.norm(dim=1, keepdim=True), tuple(names), tuple(freqs), tuple(kinds)


def _basis_tensor(p: int) -> torch.Tensor:
    return _basis(_check_p(p))[0]


def _per_freq(sq: torch.Tensor, p: int) -> torch.Tensor:
    """Sum squared coefficients over basis rows of the same frequency → ``(n_freqs + 1,)``."""
    out = torch.zeros(n_freqs(p) + 1, dtype=sq.dtype)
    out[0] = sq[0]
    out[1:] = sq[1::2] + sq[2::2]
    return out


def _freq_da(values: torch.Tensor, p: int, name: str, **attrs: Any) -> xr.DataArray:
    return xr.DataArray(values.numpy(), dims=("freq",), coords={"freq": np.arange(n_freqs(p) + 1)},
                        name=name, attrs={"reference": PAPER, **attrs})


def _embedding(model_or_W: Any, p: int | None = None) -> tuple[torch.Tensor, int]:
    W = model_or_W.W_E if isinstance(model_or_W, nn.Module) else model_or_W
    if isinstance(model_or_W, nn.Module) and p is None:
        p = model_or_W.p
    W = as_tensor(W, "W_E", ndim=2, dtype=torch.float64)
    p = _check_p(p if p is not None else W.shape[0])
    if W.shape[0] not in (p, p + 1):
        raise ValueError(f"W_E must have p={p} or p+1 rows (tokens), got shape {tuple(W.shape)}")
    return W[:p], p


def embedding_fourier_norms(model_or_W: Any, p: int | None = None) -> xr.DataArray:
    """Norm of the token embedding per frequency, ``||(B W_E)_{cos k}||² + ||(B W_E)_{sin k}||²`` → sqrt.

    Parameters
    ----------
    model_or_W : a model with ``W_E`` and ``p`` (``Transformer``, ``MLP``) or an embedding matrix
        ``(p or p+1, d)``; the ``=`` row (index ``p``) is dropped.
    p : modulus, inferred from the model or the matrix.

    Returns
    -------
    xr.DataArray ``(freq,)``, ``freq = 0..(p-1)/2`` (0 = constant), Euclidean norm ([1], Fig. 3).
    """
    W, p = _embedding(model_or_W, p)
    sq = (_basis_tensor(p) @ W).pow(2).sum(1)
    return _freq_da(_per_freq(sq, p).sqrt(), p, "embed_norm", matrix="W_E")


def neuron_logit_map(model: nn.Module) -> torch.Tensor:
    """Neuron → logit map ``(neuron, p)``: ``W_out W_U`` (transformer) or the MLP's unembedding."""
    if hasattr(model, "W_logit"):
        return model.W_logit.detach()
    if hasattr(model, "unembed"):
        return model.unembed.weight.detach().T
    raise TypeError(f"{type(model).__name__} has no neuron→logit map (needs W_logit or unembed)")


def neuron_logit_fourier_norms(model_or_W: Any, p: int | None = None) -> xr.DataArray:
    """Norm of the neuron→logit map ``W_logit (neuron, p)`` per output frequency ([1], Sec. 5.1).

    Returns ``xr.DataArray (freq,)`` like :func:`embedding_fourier_norms`.
    """
    W = neuron_logit_map(model_or_W) if isinstance(model_or_W, nn.Module) else model_or_W
    W = as_tensor(W, "W_logit", ndim=2, dtype=torch.float64)
    p = _check_p(p if p is not None else W.shape[1])
    if W.shape[1] != p:
        raise ValueError(f"W_logit must have p={p} columns, got shape {tuple(W.shape)}")
    sq = (W @ _basis_tensor(p).T).pow(2).sum(0)
    return _freq_da(_per_freq(sq, p).sqrt(), p, "logit_norm", matrix="W_logit")


def key_frequencies(model_or_run: Any, *, factor: float = 3.0, coverage: float = 0.95,
                    max_freqs: int | None = None, p: int | None = None) -> list[int]:
    """Key frequencies: the few that stand far above the median and together hold most energy.

    Rule: with ``E_k = ||(B W_E)_{cos k}||² + ||(B W_E)_{sin k}||²`` for ``k = 1..(p-1)/2`` (the
    constant is excluded), the candidates are ``{k : E_k ≥ factor · median_k E_k}``, sorted by
    decreasing ``E_k``; the list is cut after the first candidate at which the candidates so far
    hold ``coverage`` of ``Σ_k E_k``, then truncated to ``max_freqs``. At a random init ``E_k`` is a
    chi-square with ``2·d_model`` degrees of freedom (relative spread ≈ ``sqrt(1/d_model)``, ≈ 0.09
    for d = 128), so no frequency passes ``factor = 3``; a grokked model puts almost all energy into
    a handful of frequencies ([1] Sec. 4: "the embedding is sparse in the Fourier basis"). The median
    (not the mean) keeps the threshold independent of how many key frequencies there are. The
    coverage cut matters after cleanup: weight decay shrinks the unused frequencies so far that
    leftovers at 0.1–1 % of the energy still pass the median test — the paper's config here
    (p = 113, seed 0, 40k steps) has 11 candidates, of which 3 hold 97.5 % of the energy and are
    the 3 frequencies the neurons cluster on.

    Parameters
    ----------
    model_or_run : model with ``W_E``, an embedding matrix, or a :class:`workbench.store.Run`
        (its latest checkpoint is loaded).
    factor : candidates need ``E_k ≥ factor · median(E)``.
    coverage : in (0, 1]; 1 keeps every candidate.
    """
    check_range(factor, "factor", 0.0, low_open=True)
    check_range(coverage, "coverage", 0.0, 1.0, low_open=True)
    if hasattr(model_or_run, "load_model"):
        model_or_run = model_or_run.load_model()
    E = embedding_fourier_norms(model_or_run, p).values[1:] ** 2
    order = np.argsort(-E, kind="stable")
    keys, held = [], 0.0
    for k in order:
        if E[k] < factor * np.median(E) or held >= coverage * E.sum():
            break
        keys.append(int(k) + 1)
        held += E[k]
    return keys[:max_freqs] if max_freqs is not None else keys


def gini(x: Any, dim: str = "freq") -> xr.DataArray:
    """Gini coefficient of non-negative values along ``dim`` (0 = spread evenly, (n-1)/n = one-hot).

    ``G = Σ_i (2i − n − 1) x_(i) / (n Σ_i x_(i))`` with ``x_(i)`` sorted ascending, ``i = 1..n``.
    [1] (Fig. 7) tracks the Gini of the Fourier norms of ``W_E`` and ``W_logit``: it rises as the
    representation becomes sparse in frequency.
    """
    da = x if isinstance(x, xr.DataArray) else xr.DataArray(np.asarray(x, dtype=np.float64), dims=(dim,))
    if dim not in da.dims:
        raise ValueError(f"dim {dim!r} not in the input's dims {da.dims}")
    if bool((da < 0).any()) or not bool(np.isfinite(da).all()):
        raise ValueError("gini needs finite, non-negative values")

    def _g(v: np.ndarray) -> np.ndarray:
        v = np.sort(v, axis=-1)
        n = v.shape[-1]
        i = np.arange(1, n + 1)
        tot = v.sum(-1)
        return np.where(tot > 0, ((2 * i - n - 1) * v).sum(-1) / (n * np.where(tot > 0, tot, 1)), 0.0)

    return xr.apply_ufunc(_g, da, input_core_dims=[[dim]]).rename("gini").assign_attrs(reference=PAPER)


def weight_norm(model: nn.Module) -> xr.DataArray:
    """Total sum of squared parameters ``Σ_θ ||θ||²`` ([1], Fig. 7: falls during cleanup)."""
    total = sum(float(q.detach().double().pow(2).sum()) for q in model.parameters())
    return xr.DataArray(total, name="weight_norm", attrs={"reference": PAPER})


# ------------------------------------------------------------------ logits / activations on Z_p²
@torch.no_grad()
def all_logits(model: nn.Module, p: int) -> torch.Tensor:
    """Logits on every input ``(a, b, =)``: ``(p, p, p)`` float64 indexed ``[a, b, c]``."""
    p = _check_model_p(model, p)
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.reshape(-1), b.reshape(-1), torch.full((p * p,), p)], 1)
    dev = next(model.parameters()).device
    return model(x.to(dev)).double().cpu().reshape(p, p, -1)


@torch.no_grad()
def neuron_activations(model: nn.Module, p: int) -> torch.Tensor:
    """Post-ReLU MLP activations on every input at the last position: ``(p, p, neuron)`` float64."""
    p = _check_model_p(model, p)
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.reshape(-1), b.reshape(-1), torch.full((p * p,), p)], 1)
    x = x.to(next(model.parameters()).device)
    if hasattr(model, "neuron_acts_last"):  # workbench Transformer: fast path, same values as the cache
        acts = model.neuron_acts_last(x)
    elif hasattr(model, "hidden") and hasattr(model, "embed"):  # workbench.grokking.mlp.MLP
        acts = torch.relu(model.hidden(model.embed(x[:, :2]).flatten(1)))
    else:
        raise TypeError(f"{type(model).__name__}: no known MLP activations (Transformer or MLP expected)")
    return acts.double().cpu().reshape(p, p, -1)


def fourier_2d(x: Any, name: str = "x", dtype: torch.dtype = torch.float64) -> xr.DataArray:
    """2-D Fourier transform over the first two axes ``(a, b)``: ``B x B^T`` per trailing entry.

    Parameters
    ----------
    x : ``(p, p)`` or ``(p, p, n)`` (logits: ``n = p`` outputs; neurons: ``n`` = number of neurons).

    Returns
    -------
    xr.DataArray ``(basis_a, basis_b[, channel])`` with basis labels as in :func:`fourier_basis`.
    """
    t = as_tensor(x, name, ndim=(2, 3), dtype=dtype)
    p = _check_p(t.shape[0])
    if t.shape[1] != p:
        raise ValueError(f"{name} must be (p, p[, n]), got shape {tuple(t.shape)}")
    B = _basis_tensor(p).to(dtype)
    X = t if t.ndim == 3 else t[..., None]
    n = X.shape[2]
    f = (B @ X.reshape(p, p * n)).reshape(p, p, n)  # transform over a: (basis_a, b, n)
    f = (B @ f.transpose(0, 1).reshape(p, p * n)).reshape(p, p, n).transpose(0, 1)  # over b
    labels = list(_basis(p)[1])
    dims = ("basis_a", "basis_b", "channel")
    da = xr.DataArray(f.numpy(), dims=dims, coords={"basis_a": labels, "basis_b": labels})
    return (da if t.ndim == 3 else da.isel(channel=0, drop=True)).assign_attrs(reference=PAPER)


def logit_fourier_2d(logits: Any) -> xr.DataArray:
    """Norm of the logits' 2-D Fourier components pooled per frequency pair ([1], Fig. 4).

    The ``(p, p, p)`` logits are transformed over ``(a, b)``; squared coefficients are summed over
    the output ``c`` and over the cos/sin components of each frequency, then square-rooted.

    Returns ``xr.DataArray (freq_a, freq_b)``, ``freq = 0..(p-1)/2`` (0 = constant).
    """
    f = fourier_2d(logits, "logits")
    sq = torch.from_numpy((f**2).sum("channel").values)
    p = sq.shape[0]
    pooled = _pool2(sq, p)
    k = np.arange(n_freqs(p) + 1)
    return xr.DataArray(pooled.sqrt().numpy(), dims=("freq_a", "freq_b"), coords={"freq_a": k, "freq_b": k},
                        name="logit_fourier_2d", attrs={"reference": PAPER})


def _pool2(sq: torch.Tensor, p: int) -> torch.Tensor:
    """Sum a ``(basis_a, basis_b)`` energy map over cos/sin pairs on both axes → ``(freq_a, freq_b)``."""
    rows = torch.cat([sq[:1], sq[1::2] + sq[2::2]])  # (freq_a, basis_b)
    return torch.cat([rows[:, :1], rows[:, 1::2] + rows[:, 2::2]], 1)


def neuron_frequency_clusters(acts: Any, threshold: float = 0.85) -> xr.Dataset:
    """Each neuron's best frequency and the fraction of its variance that frequency explains.

    For neuron ``n`` with 2-D Fourier coefficients ``f_n[i, j]`` of its activations over ``(a, b)``,
    the variance (constant term excluded) explained by frequency ``k`` is the energy in the terms
    built only from ``{const, cos k, sin k}`` along both axes ([1], Sec. 4.2 / Fig. 5). Neurons with
    best fraction ≥ ``threshold`` join cluster ``k``; the others get cluster 0 ("unclustered").

    Parameters
    ----------
    acts : ``(p, p, neuron)`` activations (see :func:`neuron_activations`).

    Returns
    -------
    xr.Dataset over ``neuron`` with ``best_freq``, ``frac_explained``, ``cluster`` (int, 0 = none).
    """
    check_range(threshold, "threshold", 0.0, 1.0)
    f = torch.from_numpy(fourier_2d(acts, "acts", dtype=torch.float32).values).double()  # (basis_a, basis_b, neuron)
    p = f.shape[0]
    sq = f.pow(2)
    sq[0, 0] = 0.0  # the mean is not variance
    total = sq.sum((0, 1)).clamp_min(1e-300)
    pooled = _pool2(sq, p)  # (freq_a, freq_b, neuron): energy per frequency pair
    k = torch.arange(1, n_freqs(p) + 1)
    fr = (pooled[0, k] + pooled[k, 0] + pooled[k, k]) / total  # (freq, neuron): terms built from {1, cos k, sin k}
    best_val, best = fr.max(0)
    best = best + 1
    cluster = torch.where(best_val >= threshold, best, torch.zeros_like(best))
    neuron = np.arange(fr.shape[1])
    return xr.Dataset({"best_freq": ("neuron", best.numpy()), "frac_explained": ("neuron", best_val.numpy()),
                       "cluster": ("neuron", cluster.numpy())}, coords={"neuron": neuron},
                      attrs={"reference": PAPER, "threshold": threshold})
