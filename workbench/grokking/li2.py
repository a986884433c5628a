"""Li²: the two-layer model of group arithmetic and the energy of its independent feature stage.

Tian (2025) splits grokking of ``one-hot(a) ⊕ one-hot(b) → W (2|G| → K, no bias) → σ → V (K → |G|)``
into **l**azy learning (``V`` fits random hidden features), **i**ndependent feature learning (weight
decay plus the lazy fit make the back-propagated gradient ``G_F ∝ Ỹ Ỹᵀ σ(XW)``, so each hidden
neuron ``w`` ascends its own energy) and **i**nteractive feature learning. The energy is

    E(w) = ½ ‖Ỹᵀ σ(X w)‖²,                                                         (1)

``X`` the ``(N, 2|G|)`` one-hot inputs of the training pairs, ``Ỹ = (I − 11ᵀ/N) Y`` the centred
one-hot labels; its local maxima are the features that emerge.

Maxima for ``σ(x) = x²`` on all pairs of ``Z_p`` (derived here; tested). Write ``w = (u, v)``,
``u, v ∈ R^p``. Since ``(u_a + v_b)² = u_a² + v_b² + 2 u_a v_b`` and every ``c`` has ``p`` pairs,
the squared terms cancel against the centring and ``(Ỹᵀσ)_c = 2 [(u ⋆ v)(c) − mean(u ⋆ v)]`` with
``⋆`` the cyclic convolution. By Parseval, ``E = (2/p) Σ_{k≠0} |û_k|² |v̂_k|²``; on the sphere
``‖u‖² + ‖v‖² = 1`` (``(1/p) Σ_k |û_k|² + |v̂_k|² = 1``) this is a convex function of the spectral
masses on a simplex, so its local maxima are its vertices: **u and v supported on one frequency
pair ±k, ‖u‖ = ‖v‖ = 1/√2, any phases, E = p/4** — the Fourier features of Nanda et al. The same
argument on any group (``(u ⋆ v)^(ρ) = û(ρ) v̂(ρ)``, Plancherel with weights ``d_ρ/|G|``) puts the
maxima on one real irrep with rank-one ``û(ρ), v̂(ρ)``: ``E = |G| / (2 d_ρ)`` for an irrep of real
type (``|G|/4`` for a complex pair of 1-d irreps, as on ``Z_p``).

References
----------
.. [1] Tian (2025). Provable scaling laws of feature emergence from learning dynamics of grokking
   (Li²). Code: github.com/yuandong-tian/understanding, ``ssl/real-dataset/cogo/``.
.. [2] Morwani et al. (2024). Feature emergence via margin maximization. ICLR. arXiv:2311.07568.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from workbench.device import init_generator
from workbench.grokking.groups_measures import irrep_concentration
from workbench.tasks.groups import FiniteGroup, evaluate_word, group_from_name
from workbench.validation import as_tensor, check_range

PAPER = "Tian 2025, Li² (github.com/yuandong-tian/understanding, ssl/real-dataset/cogo)"
ACTIVATIONS = {"sqr": lambda x: x * x, "relu": torch.relu}


class Li2MLP(nn.Module):
    """``(batch, ≥2)`` token ids ``(a, b, ...)`` → ``(batch, n)`` outputs ``V σ(W [e_a; e_b])`` ([1]).

    Parameters
    ----------
    n : group order ``|G|`` (classes and one-hot width per operand).
    hidden : ``K`` hidden neurons.
    activation : ``"sqr"`` (``x²``, the reference's default) or ``"relu"``.
    seed, generator : initial weights (PyTorch's ``nn.Linear`` default, drawn from this generator).
    """

    def __init__(self, n: int, hidden: int = 512, activation: str = "sqr", seed: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        check_range(n, "n", 2)
        check_range(hidden, "hidden", 1)
        self.p, self.activation = n, activation
        self.W = nn.Linear(2 * n, hidden, bias=False)
        self.V = nn.Linear(hidden, n, bias=False)
        gen = init_generator(seed, generator)
        with torch.no_grad():
            for lin in (self.W, self.V):
                bound = lin.in_features ** -0.5
                lin.weight.copy_(torch.rand(lin.weight.shape, generator=gen) * 2 * bound - bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.V(ACTIVATIONS[self.activation](self.hidden_pre(x)))

    def hidden_pre(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, K)`` pre-activations ``W [e_a; e_b]`` (rows of ``Wᵀ``: 2x faster than columns of ``W``)."""
        Wt = self.W.weight.T
        return Wt[x[:, 0]] + Wt[self.p + x[:, 1]]


def li2_loss(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Centred MSE ``mean_n ‖(o_n − ō_n) − (e_{y_n} − 1/M)‖²`` ([1], ``compute_loss``; ``loss="mse"``) or cross-entropy."""
    if loss == "ce":
        return F.cross_entropy(out, y)
    target = F.one_hot(y, out.shape[1]).to(out.dtype) - 1.0 / out.shape[1]
    return (out - out.mean(1, keepdim=True) - target).pow(2).sum(1).mean()


def _labels(group: FiniteGroup, word: str, pairs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = group.order
    if pairs is None:
        a, b = (t.reshape(-1) for t in torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"))
    else:
        pt = as_tensor(pairs, "pairs", ndim=2, dtype=torch.long)
        a, b = pt[:, 0], pt[:, 1]
    return a, b, torch.from_numpy(evaluate_word(group, word))[a, b]


def _energy(W: torch.Tensor, n: int, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, act: str) -> torch.Tensor:
    """Eq. (1) per row of ``W (K, 2n)``, differentiable: ``½ ‖Ỹᵀ σ(X w)‖²``."""
    H = ACTIVATIONS[act](W[:, a] + W[:, n + b])  # (K, N) = σ(X w)ᵀ
    S = torch.zeros(W.shape[0], n, dtype=W.dtype).index_add_(1, y, H)  # Yᵀ σ
    freq = torch.bincount(y, minlength=n).to(W.dtype) / len(y)
    return 0.5 * (S - H.sum(1, keepdim=True) * freq).pow(2).sum(1)  # Ỹᵀσ = Yᵀσ − (Σσ)·mean(Y)


def li2_energy(W: Any, group: FiniteGroup | str, activation: str = "sqr", word: str = "ab",
               pairs: Any = None) -> xr.DataArray:
    """Li² energy ``E(w) = ½‖Ỹᵀσ(Xw)‖²`` (Eq. 1 of the module docstring) of each neuron.

    Parameters
    ----------
    W : ``(K, 2|G|)`` first-layer weights (rows ``w = (u, v)``), a ``(2|G|,)`` vector, or a
        :class:`Li2MLP`.
    group : the group or its name.
    activation : ``"sqr"`` or ``"relu"``.
    word : the task's word (default the product ``ab``).
    pairs : ``(N, ≥2)`` training pairs ``(a, b, ...)``; default all ``|G|²`` pairs.

    Returns
    -------
    xr.DataArray ``(neuron,)`` float64.
    """
    g = group_from_name(group) if isinstance(group, str) else group
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    W = W.W.weight if isinstance(W, Li2MLP) else W
    Wt = as_tensor(W, "W", ndim=(1, 2), dtype=torch.float64)
    Wt = Wt[None] if Wt.ndim == 1 else Wt
    if Wt.shape[1] != 2 * g.order:
        raise ValueError(f"W must have 2|G| = {2 * g.order} columns, got shape {tuple(Wt.shape)}")
    E = _energy(Wt, g.order, *_labels(g, word, pairs), activation)
    return xr.DataArray(E.numpy(), dims=("neuron",), coords={"neuron": np.arange(len(E))}, name="li2_energy",
                        attrs={"reference": PAPER, "activation": activation, "group": g.name, "word": word})


def li2_ascent(group: FiniteGroup | str, n_starts: int = 64, activation: str = "sqr", word: str = "ab",
               pairs: Any = None, steps: int = 2000, lr: float = 0.5, seed: int = 0) -> xr.Dataset:
    """Gradient ascent of the Li² energy on the unit sphere from random starts: where its maxima lie.

    Each start ``w ~ N(0, I)/‖·‖`` takes ``steps`` Riemannian steps
    ``w ← normalise(w + lr · (∇E − (∇E·w) w) / (4E))`` (``E`` is homogeneous of degree 4 for
    ``x²``, 2 for ReLU; dividing by ``4E`` makes the step scale-free). The energy is homogeneous, so
    only directions matter — the sphere stands in for the weight-decay-limited norm of [1].

    Returns
    -------
    xr.Dataset over ``start``: ``energy`` (at the end), ``best_irrep`` and ``concentration`` (share
    of the non-trivial energy of ``w`` in its best real irrep class), and ``w`` over ``(start, input)``.
    """
    g = group_from_name(group) if isinstance(group, str) else group
    check_range(n_starts, "n_starts", 1)
    check_range(lr, "lr", 0.0, low_open=True)
    a, b, y = _labels(g, word, pairs)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n_starts, 2 * g.order, generator=gen, dtype=torch.float64)
    w = w / w.norm(dim=1, keepdim=True)
    for _ in range(steps):
        w.requires_grad_(True)
        E = _energy(w, g.order, a, b, y, activation)
        (grad,) = torch.autograd.grad(E.sum(), w)
        with torch.no_grad():
            tangent = grad - (grad * w).sum(1, keepdim=True) * w
            w = w + lr * tangent / (4 * E[:, None]).clamp_min(1e-30)
            w = w / w.norm(dim=1, keepdim=True)
    model = Li2MLP(g.order, n_starts, activation)
    with torch.no_grad():
        model.W.weight.copy_(w.float())
    conc = irrep_concentration(model, g)
    E = _energy(w, g.order, a, b, y, activation)
    return xr.Dataset({"energy": ("start", E.numpy()), "best_irrep": ("start", conc.best_irrep.values),
                       "concentration": ("start", conc.concentration.values), "w": (("start", "input"), w.numpy())},
                      coords={"start": np.arange(n_starts)},
                      attrs={"reference": PAPER, "group": g.name, "activation": activation, "word": word})
