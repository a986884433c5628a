"""Irreducible representations of a finite group, and the group Fourier transform.

How the irreps are computed (:func:`irreps`). The left regular representation
``λ(g) e_h = e_{gh}`` on ``C^G`` contains every irrep ``ρ`` exactly ``d_ρ`` times:
``C^G ≅ ⊕_ρ ρ ⊗ C^{d_ρ}``. Right translations ``R(h) f(x) = f(xh)`` commute with ``λ``, so a
random Hermitian element ``C = Σ_h c_h R(h) + c̄_h R(h)ᵀ`` of the commutant acts as
``⊕_ρ I_{d_ρ} ⊗ H_ρ`` with ``H_ρ`` a generic ``d_ρ × d_ρ`` Hermitian matrix: every eigenspace of
``C`` is one copy of one irrep (Serre 1977, Sec. 2.6; the "random element of the commutant" trick
of Dixon's and Babai–Friedl's algorithms). An orthonormal basis ``U`` of an eigenspace gives
``ρ(g) = Uᴴ λ(g) U``, unitary. Each eigenspace is checked irreducible (``⟨χ, χ⟩ = 1``); one is kept
per character. Complex irreps are what the theory states (characters, Schur orthogonality); the
measures on real weights pool each irrep with its complex conjugate into a *real class* (on
``Z_p``: ``{k, −k}``, Nanda's frequency ``k``) with the real orthonormal basis :func:`irrep_basis`.

The group Fourier transform (:func:`group_fourier`) is ``f̂(ρ) = Σ_g f(g) ρ(g)``, stored with the
unitary scaling ``c_{ρij} = sqrt(d_ρ/|G|) f̂(ρ)_{ij}`` so that ``Σ|c|² = Σ_g |f(g)|²`` (Plancherel)
and ``f(g) = (1/|G|) Σ_ρ d_ρ tr(f̂(ρ) ρ(g)ᴴ)``.

References
----------
.. [1] Serre (1977). Linear Representations of Finite Groups. Springer. Secs. 2.2-2.6, 13.2.
.. [2] Dixon (1970). Computing irreducible representations of groups. Math. Comp. 24, 707-712.
.. [3] Chughtai, Chan, Nanda (2023). A toy model of universality. arXiv:2302.03025 (irreps as features).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xarray as xr

from workbench.tasks.groups import FiniteGroup, group_from_name

REFERENCE = "Serre 1977, Linear Representations of Finite Groups; Chughtai et al. 2023, arXiv:2302.03025"


@dataclass(frozen=True, eq=False)
class Irreps:
    """The complex irreps of a group, one per isomorphism class, trivial first.

    Attributes
    ----------
    group : the :class:`FiniteGroup`.
    labels : e.g. ``("1", "1b", "2a", "3a", "3b")``; on ``Z_n`` the frequency ``k`` (``"0".."n-1"``).
    matrices : per irrep, ``(|G|, d, d)`` complex unitary ``ρ(g)``.
    classes : ``(|G|,)`` conjugacy class index of each element (classes numbered by first element).
    indicator : Frobenius–Schur indicator per irrep (1 real, 0 complex, −1 quaternionic).
    real_class : per irrep, the label of its real class (an irrep and its conjugate share one).
    """

    group: FiniteGroup
    labels: tuple[str, ...]
    matrices: tuple[np.ndarray, ...]
    classes: np.ndarray
    indicator: tuple[int, ...]
    real_class: tuple[str, ...]

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(m.shape[1] for m in self.matrices)

    def characters(self) -> np.ndarray:
        """``(irrep, |G|)`` complex characters ``χ_ρ(g) = tr ρ(g)``."""
        return np.stack([np.trace(m, axis1=1, axis2=2) for m in self.matrices])

    def character_table(self) -> xr.DataArray:
        """Characters on one representative per conjugacy class: dims ``(irrep, class)``; coords
        ``representative`` (element label) and ``size`` (class size) on ``class``."""
        reps = [int(np.flatnonzero(self.classes == c)[0]) for c in range(self.classes.max() + 1)]
        sizes = np.bincount(self.classes)
        return xr.DataArray(self.characters()[:, reps], dims=("irrep", "class"),
                            coords={"irrep": list(self.labels), "class": np.arange(len(reps)),
                                    "representative": ("class", [self.group.elements[r] for r in reps]),
                                    "size": ("class", sizes)}, attrs={"group": self.group.name})

    def real_classes(self) -> list[str]:
        """Real class labels in irrep order, each once (trivial first)."""
        return list(dict.fromkeys(self.real_class))


def conjugacy_classes(group: FiniteGroup) -> np.ndarray:
    """``(|G|,)`` class index of each element; classes numbered in order of their first element."""
    n, inv = group.order, group.inverse
    conj = group.table[group.table[:, np.arange(n)], inv[:, None]]  # conj[g, x] = g x g⁻¹
    out = np.full(n, -1)
    for x in range(n):
        if out[x] < 0:
            out[np.unique(conj[:, x])] = out.max() + 1
    return out


def _regular_blocks(group: FiniteGroup, rng: np.random.Generator) -> list[np.ndarray]:
    """Orthonormal bases ``(|G|, d)`` of the eigenspaces of a random Hermitian commutant element."""
    n, inv = group.order, group.inverse
    c = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    M = group.table[inv[:, None], np.arange(n)[None, :]]  # M[x, y] = index of x⁻¹ y
    C = c[M] + np.conj(c[M.T])  # Σ_h c_h R(h) + c̄_h R(h)ᵀ, Hermitian
    w, V = np.linalg.eigh(C)
    cuts = np.flatnonzero(np.diff(w) > 1e-6 * max(1.0, np.abs(w).max())) + 1
    return [V[:, s] for s in np.split(np.arange(n), cuts)]


def _represent(group: FiniteGroup, U: np.ndarray) -> np.ndarray:
    """``ρ(g) = Uᴴ λ(g) U`` for all g: ``(|G|, d, d)``; ``(λ(g) U)[x] = U[g⁻¹ x]``."""
    idx = group.table[group.inverse[:, None], np.arange(group.order)[None, :]]  # idx[g, x] = g⁻¹ x
    return np.einsum("xi,gxj->gij", U.conj(), U[idx])


def _label_order(group: FiniteGroup, chars: list[np.ndarray], dims: list[int]) -> tuple[list[int], list[str]]:
    """Deterministic order (trivial first; by dimension, then characters) and labels."""
    m = re.fullmatch(r"Z(\d+)", group.name)
    if m and group.order > 1:  # Z_n: label by the frequency k with χ_k(1) = exp(2πik/n)
        k = [round(float(np.angle(ch[1])) / (2 * np.pi) * group.order) % group.order for ch in chars]
        order = list(np.argsort(k))
        return order, [str(k[i]) for i in order]
    keys = [(d, *np.round(-ch.real, 6), *np.round(-ch.imag, 6)) for d, ch in zip(dims, chars)]
    order = sorted(range(len(chars)), key=lambda i: keys[i])
    labels, seen = [], {}
    for i in order:
        seen[dims[i]] = seen.get(dims[i], 0) + 1
        labels.append(str(dims[i]) + "abcdefghijklmnopqrstuvwxyz"[seen[dims[i]] - 1])
    labels[0] = "1"  # the trivial irrep
    return order, labels


def _compute(group: FiniteGroup, seed: int) -> Irreps:
    rng = np.random.default_rng(seed)
    n = group.order
    for _ in range(10):  # a near-degenerate random draw merges two eigenspaces: draw again
        found: dict[tuple, np.ndarray] = {}
        for U in _regular_blocks(group, rng):
            rho = _represent(group, U)
            chi = np.trace(rho, axis1=1, axis2=2)
            if abs(np.vdot(chi, chi).real / n - 1) > 1e-6:
                break
            found.setdefault(tuple(np.round(chi, 6)), rho)
        else:
            if sum(r.shape[1] ** 2 for r in found.values()) == n:
                break
    else:  # pragma: no cover - 10 degenerate draws in a row
        raise RuntimeError(f"could not split the regular representation of {group.name}")
    mats = list(found.values())
    chars = [np.trace(r, axis1=1, axis2=2) for r in mats]
    order, labels = _label_order(group, chars, [r.shape[1] for r in mats])
    mats, chars = [mats[i] for i in order], [chars[i] for i in order]
    sq = group.power(2)
    indicator = tuple(round(float((ch[sq].sum() / n).real)) for ch in chars)
    cyclic = re.fullmatch(r"Z\d+", group.name) is not None
    real = []
    for i, ch in enumerate(chars):  # pair each complex irrep with its conjugate; Z_n: frequency min(k, n-k)
        j = next(j for j, other in enumerate(chars) if np.allclose(other, ch.conj(), atol=1e-6))
        real.append(labels[i] if i <= j else (labels[j] if cyclic else f"{labels[j]}+{labels[i]}"))
        if i > j:
            real[j] = real[i]
    return Irreps(group, tuple(labels), tuple(mats), conjugacy_classes(group), indicator, tuple(real))


@lru_cache(maxsize=32)
def _cached(name: str, table: bytes, seed: int) -> Irreps:
    group = group_from_name(name)
    if group.table.tobytes() != table:
        raise ValueError(f"group {name!r} differs from the named group {name}; pass it to irreps(..., cache=False)")
    return _compute(group, seed)


def irreps(group: FiniteGroup | str, seed: int = 0, cache: bool = True) -> Irreps:
    """All complex irreducible representations of ``group`` (module docstring: how).

    Parameters
    ----------
    group : a :class:`FiniteGroup` or a name for :func:`group_from_name`.
    seed : seed of the random commutant element (the irreps are the same up to a change of basis).
    cache : reuse the result for named groups (S_5 takes ~0.1 s).
    """
    g = group_from_name(group) if isinstance(group, str) else group
    if not isinstance(g, FiniteGroup):
        raise TypeError(f"group must be a FiniteGroup or a name like 'S4', got {type(group).__name__}")
    return _cached(g.name, g.table.tobytes(), seed) if cache else _compute(g, seed)


def fourier_matrix(group: FiniteGroup | str) -> xr.DataArray:
    """Unitary group Fourier matrix ``T[(ρ, i, j), g] = sqrt(d_ρ/|G|) ρ(g)_{ij}``.

    Rows are ordered by irrep, then ``i``, then ``j``; ``T Tᴴ = I`` is Schur orthogonality plus
    ``Σ_ρ d_ρ² = |G|`` ([1], Sec. 2.4, Cor. 2). Dims ``(coef, element)``; coords ``irrep``, ``row``,
    ``col`` and ``real_class`` on ``coef``.
    """
    R = irreps(group)
    n = R.group.order
    rows, irrep, real, ii, jj = [], [], [], [], []
    for lab, cls, m in zip(R.labels, R.real_class, R.matrices):
        d = m.shape[1]
        rows.append(np.sqrt(d / n) * m.reshape(n, d * d).T)
        irrep += [lab] * d * d
        real += [cls] * d * d
        ii += list(np.repeat(np.arange(d), d))
        jj += list(np.tile(np.arange(d), d))
    return xr.DataArray(np.concatenate(rows), dims=("coef", "element"),
                        coords={"irrep": ("coef", irrep), "row": ("coef", ii), "col": ("coef", jj),
                                "real_class": ("coef", real), "element": list(R.group.elements)},
                        attrs={"group": R.group.name, "reference": REFERENCE})


def group_fourier(f: np.ndarray, group: FiniteGroup | str) -> xr.DataArray:
    """Group Fourier coefficients ``c_{ρij} = sqrt(d_ρ/|G|) Σ_g f(g) ρ(g)_{ij}`` of ``f`` (module docstring).

    Parameters
    ----------
    f : ``(|G|,)`` or ``(|G|, m)`` values on the group elements (rows in element order).

    Returns
    -------
    xr.DataArray ``(coef[, channel])`` complex, coords as :func:`fourier_matrix`.
    """
    T = fourier_matrix(group)
    x = np.asarray(f)
    if x.ndim not in (1, 2) or x.shape[0] != T.sizes["element"] or not np.isfinite(x).all():
        raise ValueError(f"f must be finite with {T.sizes['element']} rows (one per element), got shape {x.shape}")
    out = T.values @ x
    dims = ("coef",) if x.ndim == 1 else ("coef", "channel")
    return xr.DataArray(out, dims=dims, coords={k: v for k, v in T.coords.items() if k != "element"},
                        attrs=T.attrs)


def inverse_group_fourier(c: xr.DataArray | np.ndarray, group: FiniteGroup | str) -> np.ndarray:
    """``f = Tᴴ c``: values on the elements from :func:`group_fourier` coefficients."""
    return fourier_matrix(group).values.conj().T @ np.asarray(c)


@lru_cache(maxsize=32)
def _real_basis(name: str, table: bytes) -> tuple[np.ndarray, tuple[str, ...]]:
    T = fourier_matrix(group_from_name(name))
    rows, labels = [], []
    for cls in dict.fromkeys(T.real_class.values.tolist()):
        Tk = T.values[T.real_class.values == cls]
        P = (Tk.conj().T @ Tk).real  # projector on the real class: real since the class is closed under conjugation
        w, V = np.linalg.eigh(P)
        rows.append(V[:, w > 0.5].T)
        labels += [cls] * int((w > 0.5).sum())
    return np.concatenate(rows), tuple(labels)


def irrep_basis(group: FiniteGroup | str) -> xr.DataArray:
    """Real orthonormal basis of functions on the group, grouped by real class ([1], Sec. 13.2).

    The rows labelled ``K`` span the real functions in the isotypic component of the irreps in
    ``K`` (an irrep with its complex conjugate): ``Σ_{ρ∈K} d_ρ²`` rows. On ``Z_p`` class ``"k"``
    spans ``{cos(2πkx/p), sin(2πkx/p)}``, the rows of :func:`workbench.grokking.fourier_basis` of
    frequency ``k``. Dims ``(basis, element)``; coord ``irrep`` (real class) on ``basis``.
    """
    g = group_from_name(group) if isinstance(group, str) else group
    irreps(g)  # validates a custom table against its name
    B, labels = _real_basis(g.name, g.table.tobytes())
    return xr.DataArray(B, dims=("basis", "element"), coords={"irrep": ("basis", list(labels)),
                                                               "element": list(g.elements)},
                        attrs={"group": g.name, "reference": REFERENCE})
