"""Progress measures on finite groups in the irrep basis: Nanda et al.'s Fourier measures, generalised.

On ``Z_p`` the real irrep classes are Nanda's frequencies, and every measure here equals its
Fourier counterpart in :mod:`workbench.grokking.fourier` / :mod:`workbench.grokking.losses`
(tested). On any group (Chughtai et al. 2023; Morwani et al. 2024):

- :func:`irrep_energy` — energy of the embedding per real irrep class, ``E_K = ‖B_K W‖²``;
- :func:`neuron_irrep_energy`, :func:`irrep_concentration` — per neuron, the energy of its input
  weights per class, and the share of the best class (Morwani et al.: one irrep per neuron);
- :func:`key_irreps` — the classes that carry the embedding (the key-frequency rule);
  :func:`neuron_key_irreps` — the classes single-irrep neurons sit on (a network may use them all);
- :func:`irrep_restricted_loss`, :func:`irrep_excluded_loss` — the logits with only / without the
  key classes' directions ``f(w(a, b) c⁻¹)``;
- :func:`group_probe` — all of them for ``train.fit``.

Models: anything with an embedding ``W_E`` (the MLP, the transformer) or the Li² model's
first layer ``W`` (:class:`workbench.grokking.li2.Li2MLP`); neuron measures need the MLP or Li².

References
----------
.. [1] Nanda et al. (2023). Progress measures for grokking via mechanistic interpretability. arXiv:2301.05217.
.. [2] Chughtai, Chan, Nanda (2023). A toy model of universality. ICML. arXiv:2302.03025.
.. [3] Morwani et al. (2024). Feature emergence via margin maximization. ICLR. arXiv:2311.07568.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from workbench.grokking.fourier import weight_norm
from workbench.grokking.irreps import irrep_basis
from workbench.tasks.groups import FiniteGroup, evaluate_word, group_from_name
from workbench.validation import as_tensor, check_range

PAPER = "Chughtai et al. 2023, arXiv:2302.03025; Nanda et al. 2023, arXiv:2301.05217"
KEY_RULE = "E_K/dim_K >= 3 median over the classes ranked below, cut at 95% of the non-trivial energy"


def _group(group: FiniteGroup | str) -> FiniteGroup:
    return group_from_name(group) if isinstance(group, str) else group


def embedding_matrix(model_or_W: Any, n: int) -> torch.Tensor:
    """``(|G|, d)`` float64 map element → vector whose irrep content the measures read.

    ``W_E`` (first ``n`` rows; the ``=`` row dropped) for models with an embedding; for the Li²
    model ``[W_aᵀ, W_bᵀ]`` (its first layer acts on one-hot inputs); a matrix is used as given.
    """
    if isinstance(model_or_W, nn.Module):
        if hasattr(model_or_W, "W_E"):
            W = model_or_W.W_E
        elif hasattr(model_or_W, "W"):
            W = model_or_W.W.weight.reshape(-1, 2, n).transpose(0, 1).reshape(-1, n).T
        else:
            raise TypeError(f"{type(model_or_W).__name__} has no embedding W_E or one-hot first layer W")
    else:
        W = model_or_W
    W = as_tensor(W, "W", ndim=2, dtype=torch.float64)
    if W.shape[0] not in (n, n + 1):
        raise ValueError(f"the embedding must have |G|={n} or |G|+1 rows, got shape {tuple(W.shape)}")
    return W[:n]


def neuron_inputs(model: nn.Module, n: int) -> torch.Tensor:
    """``(neuron, 2, |G|)``: each hidden neuron's pre-activation as a function of ``a`` and of ``b``."""
    if hasattr(model, "hidden") and hasattr(model, "embed"):  # workbench.grokking.mlp.MLP
        E = model.embed.weight.detach().double()[:n]
        W = model.hidden.weight.detach().double()
        d = E.shape[1]
        return torch.stack([W[:, :d] @ E.T, W[:, d:] @ E.T], 1)
    if hasattr(model, "W"):  # workbench.grokking.li2.Li2MLP
        return model.W.weight.detach().double().reshape(-1, 2, n)
    raise TypeError(f"{type(model).__name__}: neuron measures need the MLP or the Li² model")


def _class_energy(X: torch.Tensor, group: FiniteGroup) -> xr.DataArray:
    """Energy per real class of ``X (|G|, m, k)`` summed over ``k``: ``(irrep, m)``, ``Σ_k ‖B_K X[:, m, k]‖²``."""
    B = irrep_basis(group)
    coef = torch.from_numpy(B.values) @ X.reshape(group.order, -1)
    sq = coef.pow(2).reshape(X.shape).sum(2)
    labels = list(dict.fromkeys(B.irrep.values.tolist()))
    rows = B.irrep.values
    E = torch.stack([sq[torch.from_numpy(rows == k)].sum(0) for k in labels])
    dims = [int((rows == k).sum()) for k in labels]
    return xr.DataArray(E.numpy(), dims=("irrep", "neuron"),
                        coords={"irrep": labels, "irrep_dim": ("irrep", dims)}, attrs={"reference": PAPER})


def irrep_energy(model_or_W: Any, group: FiniteGroup | str) -> xr.DataArray:
    """Energy of the embedding per real irrep class, ``E_K = ‖B_K W‖_F²`` ([2], Sec. 5).

    ``B_K`` are the rows of :func:`irrep_basis` for class ``K``; on ``Z_p`` class ``"k"`` gives
    ``embedding_fourier_norms(W)[k]²``. Returns ``(irrep,)`` with coord ``irrep_dim`` (``Σ d_ρ²``
    over the class: the real dimension of its function space).
    """
    g = _group(group)
    W = embedding_matrix(model_or_W, g.order)
    return _class_energy(W[:, None, :], g).isel(neuron=0, drop=True).rename("irrep_energy")


def neuron_irrep_energy(model: nn.Module, group: FiniteGroup | str) -> xr.DataArray:
    """Per neuron, energy per class of its input weights on ``a`` plus on ``b``: ``(irrep, neuron)``."""
    g = _group(group)
    X = neuron_inputs(model, g.order).permute(2, 0, 1).contiguous()  # (|G|, neuron, slot)
    da = _class_energy(X, g).rename("neuron_irrep_energy")
    return da.assign_coords(neuron=np.arange(da.sizes["neuron"]))


def irrep_concentration(model: nn.Module, group: FiniteGroup | str) -> xr.Dataset:
    """Each neuron's best non-trivial class, its share of the neuron's energy, and its selectivity.

    Morwani et al. ([3], Thms. 5 and 8) prove that max-margin networks on ``Z_p`` / ``S_n`` have
    single-frequency / single-irrep neurons. ``concentration = E_best / Σ_K E_K`` over the
    non-trivial classes; since a random neuron already puts a share ``dim_K / Σ dim`` into class
    ``K`` (4/5 into the 2-d irrep of S_3), ``selectivity`` compares densities instead:
    ``(E_best / dim_best) / (Σ_{K≠best} E_K / Σ_{K≠best} dim_K)`` — about 1 at random, large for a
    single-irrep neuron. Returns a Dataset over ``neuron``: ``best_irrep`` (str), ``concentration``,
    ``selectivity``, ``energy`` (non-trivial energy of the neuron).
    """
    E = neuron_irrep_energy(model, group).isel(irrep=slice(1, None))
    dims = E.irrep_dim.values[:, None]
    tot = E.sum("irrep").values
    best = E.argmax("irrep").values
    cols = np.arange(E.sizes["neuron"])
    e_best, d_best = E.values[best, cols], dims[best, 0]
    rest = (tot - e_best) / np.maximum(dims.sum() - d_best, 1)
    return xr.Dataset({"best_irrep": ("neuron", E.irrep.values[best]),
                       "concentration": ("neuron", e_best / np.maximum(tot, 1e-300)),
                       "selectivity": ("neuron", (e_best / d_best) / np.maximum(rest, 1e-300)),
                       "energy": ("neuron", tot)}, coords={"neuron": E.neuron.values}, attrs={"reference": PAPER})


def neuron_key_irreps(model: nn.Module, group: FiniteGroup | str, *, selectivity: float = 10.0,
                      coverage: float = 0.95, min_share: float = 0.5) -> list[str]:
    """Key irrep classes read from the neurons: the classes that single-irrep neurons sit on ([3]).

    A network that uses every irrep — what margin maximization predicts ([3]) and what the Li² model
    does on S_4 — has an embedding whose energy per dimension is the same in every class, as at
    initialization, so :func:`key_irreps` finds none. The neurons tell the two apart: neurons with
    ``selectivity ≥ selectivity`` (:func:`irrep_concentration`) vote for their best class with their
    energy; classes are taken in decreasing vote until they hold ``coverage`` of the votes. Empty
    unless selective neurons hold at least ``min_share`` of all neuron energy (at random init they
    hold a few percent).
    """
    check_range(selectivity, "selectivity", 1.0)
    check_range(coverage, "coverage", 0.0, 1.0, low_open=True)
    c = irrep_concentration(model, group)
    on = c.selectivity.values >= selectivity
    if c.energy.values[on].sum() < min_share * c.energy.values.sum():
        return []
    votes = c.energy[on].groupby(c.best_irrep[on]).sum()
    order = np.argsort(-votes.values, kind="stable")
    keys, held = [], 0.0
    for k in order:
        if held >= coverage * votes.values.sum():
            break
        keys.append(str(votes.best_irrep.values[k]))
        held += votes.values[k]
    return keys


def run_key_irreps(model: nn.Module, group: FiniteGroup | str) -> list[str]:
    """The rule a run records: :func:`neuron_key_irreps` for models with neurons (MLP, Li²), else
    :func:`key_irreps` of the embedding."""
    return neuron_key_irreps(model, group) if hasattr(model, "hidden") or hasattr(model, "W") \
        else key_irreps(model, group)


def key_irreps(model_or_W: Any, group: FiniteGroup | str, *, factor: float = 3.0, coverage: float = 0.95,
               max_irreps: int | None = None) -> list[str]:
    """Key irrep classes: the few that stand far above the rest and together hold most energy.

    The key-frequency rule of :func:`workbench.grokking.fourier.key_frequencies`, on densities
    ``δ_K = E_K / dim_K`` (classes differ in dimension) of the non-trivial classes sorted by
    decreasing ``δ``: a class is taken while ``δ_K ≥ factor · median(δ of the classes ranked below
    it)`` and the classes taken so far hold less than ``coverage`` of the non-trivial energy. The
    median runs over the classes *below* (not all of them, as on ``Z_p``) because small groups have
    few classes — S_3 has two, S_4 four — and their key irreps can be half of them; on ``Z_p`` with
    56 classes the two medians differ by a few ranks of the noise floor, and the keys agree (tested).
    """
    check_range(factor, "factor", 0.0, low_open=True)
    check_range(coverage, "coverage", 0.0, 1.0, low_open=True)
    if hasattr(model_or_W, "load_model"):  # a Run: its latest checkpoint
        model_or_W = model_or_W.load_model()
    E = irrep_energy(model_or_W, group).isel(irrep=slice(1, None))
    density = E.values / E.irrep_dim.values
    order = np.argsort(-density, kind="stable")
    keys, held = [], 0.0
    for rank, k in enumerate(order[:-1]):
        if density[k] < factor * np.median(density[order[rank + 1:]]) or held >= coverage * E.values.sum():
            break
        keys.append(str(E.irrep.values[k]))
        held += E.values[k]
    return keys[:max_irreps] if max_irreps is not None else keys


@torch.no_grad()
def all_group_logits(model: nn.Module, n: int) -> torch.Tensor:
    """Logits on every input ``(a, b, =)``: ``(|G|, |G|, |G|)`` float64 indexed ``[a, b, c]``."""
    a, b = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    x = torch.stack([a.reshape(-1), b.reshape(-1), torch.full((n * n,), n)], 1)
    return model(x.to(next(model.parameters()).device)).double().cpu().reshape(n, n, -1)


def _key_component(L: torch.Tensor, group: FiniteGroup, W: np.ndarray, keys: list[str]) -> torch.Tensor:
    """Projection of ``L[a, b, c]`` on ``{f(w(a, b) c⁻¹) : f in the key classes}``.

    With ``h(g) = Σ_{w(a,b) c⁻¹ = g} L[a, b, c]`` and ``P`` the projector on the key classes, the
    projection is ``(P h)(w(a, b) c⁻¹) / |G|²``: for each ``(a, b)``, ``c ↦ w(a, b) c⁻¹`` is a
    bijection, so ``u_i(a, b, c) = f_i(w c⁻¹)`` are orthogonal with ``‖u_i‖² = |G|²`` for
    orthonormal ``f_i``. On ``Z_p`` and ``w = ab`` these are Nanda's ``cos/sin(w_k(a + b − c))``.
    """
    n = group.order
    B = irrep_basis(group)
    unknown = sorted(set(keys) - set(B.irrep.values.tolist()))
    if unknown:
        raise ValueError(f"unknown irrep class(es) {unknown} of {group.name}; known: {sorted(set(B.irrep.values))}")
    Bk = torch.from_numpy(B.values[np.isin(B.irrep.values, keys)])
    idx = torch.from_numpy(group.table[W.reshape(-1)[:, None], group.inverse[None, :]])  # (a·b, c) → w c⁻¹
    h = torch.zeros(n, dtype=L.dtype).index_add_(0, idx.reshape(-1), L.reshape(-1))
    Ph = Bk.T @ (Bk @ h)
    return (Ph[idx] / n**2).reshape(n, n, n)


def _pair_loss(L: torch.Tensor, W: np.ndarray, pairs: Any) -> float:
    n = L.shape[0]
    if pairs is None:
        a, b = (t.reshape(-1) for t in torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"))
    else:
        pt = as_tensor(pairs, "pairs", ndim=2, dtype=torch.long)
        a, b = pt[:, 0], pt[:, 1]
    return float(F.cross_entropy(L[a, b], torch.from_numpy(W)[a, b]))


def _logits3(logits: Any, n: int) -> torch.Tensor:
    L = as_tensor(logits, "logits", ndim=(2, 3), dtype=torch.float64)
    L = L.reshape(n, n, n) if L.ndim == 2 and L.shape == (n * n, n) else L
    if L.shape != (n, n, n):
        raise ValueError(f"logits must be (|G|, |G|, |G|) or (|G|², |G|) with |G|={n}, got {tuple(L.shape)}")
    return L


def irrep_restricted_loss(logits: Any, group: FiniteGroup | str, keys: list[str], word: str = "ab",
                          pairs: Any = None) -> xr.DataArray:
    """Cross-entropy of ``mean_{a,b} L + Proj_key L`` on ``pairs`` (default all) ([1], Sec. 5.2).

    Nanda's restricted loss with the key frequencies replaced by key irrep classes
    (:func:`_key_component`); equal to :func:`workbench.grokking.restricted_loss` on ``Z_p``.
    """
    g = _group(group)
    L, W = _logits3(logits, g.order), evaluate_word(g, word)
    R = L.mean((0, 1), keepdim=True) + _key_component(L, g, W, list(keys))
    return xr.DataArray(_pair_loss(R, W, pairs), name="restricted_loss", attrs={"reference": PAPER})


def irrep_excluded_loss(logits: Any, group: FiniteGroup | str, keys: list[str], word: str = "ab",
                        pairs: Any = None) -> xr.DataArray:
    """Cross-entropy of ``L − Proj_key L`` on ``pairs`` (the paper: the training pairs) ([1], Sec. 5.2)."""
    g = _group(group)
    L, W = _logits3(logits, g.order), evaluate_word(g, word)
    return xr.DataArray(_pair_loss(L - _key_component(L, g, W, list(keys)), W, pairs), name="excluded_loss",
                        attrs={"reference": PAPER})


@torch.no_grad()
def group_probe(model: nn.Module, task: Any, keys: list[str] | None = None) -> xr.Dataset:
    """The irrep progress measures of ``model`` on a :class:`~workbench.tasks.groups.GroupTask`.

    Key irreps are ``keys`` if given, else :func:`run_key_irreps` of the current model.

    Returns
    -------
    xr.Dataset (no ``step``; ``fit`` adds it): ``irrep_energy`` and ``is_key`` over ``irrep``;
    scalars ``key_irrep_fraction`` (share of the non-trivial energy in the key classes),
    ``n_key_irreps``, ``restricted_loss`` (all pairs), ``excluded_loss`` (train pairs),
    ``weight_norm``; with an MLP or Li² model, ``neuron_concentration`` over ``neuron`` and its
    energy-weighted mean ``mean_concentration`` (weight decay leaves most neurons near zero, whose
    concentration is that of noise), and ``selective_share`` (share of neuron energy in neurons of
    selectivity ≥ 10).
    """
    g = task.G
    keys = run_key_irreps(model, g) if keys is None else list(keys)
    E = irrep_energy(model, g)
    nontrivial = float(E.values[1:].sum())
    L = all_group_logits(model, g.order)
    data: dict[str, Any] = {
        "irrep_energy": E.drop_attrs(), "is_key": ("irrep", np.isin(E.irrep.values, keys)),
        "key_irrep_fraction": float(E.sel(irrep=keys).sum()) / nontrivial if keys and nontrivial > 0 else 0.0,
        "n_key_irreps": len(keys), "weight_norm": weight_norm(model).drop_attrs(),
        "restricted_loss": irrep_restricted_loss(L, g, keys, task.word).drop_attrs(),
        "excluded_loss": irrep_excluded_loss(L, g, keys, task.word, pairs=task.train_x).drop_attrs()}
    if hasattr(model, "hidden") or hasattr(model, "W"):
        conc = irrep_concentration(model, g)
        data["neuron_concentration"] = conc.concentration.astype(np.float32)
        data["mean_concentration"] = float((conc.concentration * conc.energy).sum() / conc.energy.sum())
        data["selective_share"] = float(conc.energy[conc.selectivity >= 10].sum() / conc.energy.sum())
    return xr.Dataset(data).assign_attrs(reference=PAPER, key_irrep_rule=KEY_RULE)
