"""Irreducible representations: representation-theory facts and known character tables."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.grokking import fourier_basis
from workbench.grokking.irreps import (
    conjugacy_classes,
    fourier_matrix,
    group_fourier,
    inverse_group_fourier,
    irrep_basis,
    irreps,
)
from workbench.tasks.groups import group_from_name

GROUPS = ["Z7", "Z6", "Z2xZ4", "D4", "D5", "S3", "S4", "A4", "A5", "Q8", "S3xZ2"]


@pytest.mark.parametrize("name", GROUPS)
def test_sum_of_squared_dims_and_number_of_classes(name):
    R = irreps(name)
    assert sum(d * d for d in R.dims) == R.group.order
    assert len(R.dims) == conjugacy_classes(R.group).max() + 1  # #irreps = #conjugacy classes
    assert R.labels[0] in ("0", "1") and R.dims[0] == 1 and np.allclose(R.characters()[0], 1)


@pytest.mark.parametrize("name", GROUPS)
def test_homomorphism_unitary_and_schur_orthogonality(name):
    R = irreps(name)
    t = R.group.table
    for m in R.matrices:
        d = m.shape[1]
        np.testing.assert_allclose(m[t], np.einsum("gij,hjk->ghik", m, m), atol=1e-10)  # ρ(gh) = ρ(g)ρ(h)
        np.testing.assert_allclose(np.einsum("gji,gjk->gik", m.conj(), m), np.broadcast_to(np.eye(d), m.shape),
                                   atol=1e-10)
    T = fourier_matrix(name).values  # rows sqrt(d/|G|) ρ_ij: Schur orthogonality + completeness
    np.testing.assert_allclose(T @ T.conj().T, np.eye(len(T)), atol=1e-10)
    chi = R.characters()
    np.testing.assert_allclose(chi @ chi.conj().T / R.group.order, np.eye(len(chi)), atol=1e-10)


def _table_at(name, reps):
    R = irreps(name)
    idx = [R.group.index(r) for r in reps]
    return sorted(tuple(np.round(row.real, 6) + 0.0) for row in R.characters()[:, idx])


# rows: irreps; columns: the listed class representatives (Serre 1977, Sec. 5.7-5.8; James & Liebeck)
KNOWN = {
    "S3": (["123", "213", "231"], [[1, 1, 1], [1, -1, 1], [2, 0, -1]]),
    "S4": (["1234", "2134", "2143", "2314", "2341"],
           [[1, 1, 1, 1, 1], [1, -1, 1, 1, -1], [2, 0, 2, -1, 0], [3, 1, -1, 0, -1], [3, -1, -1, 0, 1]]),
    "D4": (["e", "r2", "r1", "s", "r1s"],
           [[1, 1, 1, 1, 1], [1, 1, 1, -1, -1], [1, 1, -1, 1, -1], [1, 1, -1, -1, 1], [2, -2, 0, 0, 0]]),
    "Q8": (["1", "-1", "i", "j", "k"],
           [[1, 1, 1, 1, 1], [1, 1, 1, -1, -1], [1, 1, -1, 1, -1], [1, 1, -1, -1, 1], [2, -2, 0, 0, 0]]),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_character_tables(name):
    reps, rows = KNOWN[name]
    assert _table_at(name, reps) == sorted(tuple(float(x) for x in r) for r in rows)
    ct = irreps(name).character_table()
    assert ct.sizes["class"] == len(reps) and int(ct["size"].sum()) == group_from_name(name).order


def test_frobenius_schur_indicators():
    assert irreps("Q8").indicator == (1, 1, 1, 1, -1)  # the 2-d irrep of Q8 is quaternionic
    assert sorted(irreps("A4").indicator) == [0, 0, 1, 1]  # ω, ω̄ are complex
    assert irreps("A4").real_classes() == ["1", "1b+1c", "3a"]
    assert set(irreps("S5").indicator) == {1}  # every irrep of S_n is real


@pytest.mark.parametrize("p", [7, 13])
def test_cyclic_group_is_the_dft_and_real_classes_are_frequencies(p):
    R = irreps(f"Z{p}")
    x = np.arange(p)
    for k, lab in enumerate(R.labels):
        assert lab == str(k)
        np.testing.assert_allclose(R.matrices[k][:, 0, 0], np.exp(2j * np.pi * k * x / p), atol=1e-10)
    B, F = irrep_basis(f"Z{p}"), fourier_basis(p)
    for k in range(1, (p - 1) // 2 + 1):  # same 2-d span {cos k, sin k} per frequency
        Bk, Fk = B.values[B.irrep.values == str(k)], F.values[F.freq.values == k]
        np.testing.assert_allclose(Bk.T @ Bk, Fk.T @ Fk, atol=1e-10)


@pytest.mark.parametrize("name", ["S4", "D5", "Q8"])
def test_group_fourier_plancherel_and_inverse(name):
    rng = np.random.default_rng(0)
    n = group_from_name(name).order
    f = rng.standard_normal((n, 3))
    c = group_fourier(f, name)
    assert c.dims == ("coef", "channel") and c.sizes["coef"] == n
    np.testing.assert_allclose((np.abs(c.values) ** 2).sum(0), (f**2).sum(0), rtol=1e-10)
    np.testing.assert_allclose(inverse_group_fourier(c, name).real, f, atol=1e-10)
    # convolution theorem: (u ⋆ v)^(ρ) = û(ρ) v̂(ρ) with f̂(ρ) = Σ_g f(g) ρ(g)
    G, R = group_from_name(name), irreps(name)
    u, v = rng.standard_normal(n), rng.standard_normal(n)
    conv = np.zeros(n)
    np.add.at(conv, G.table.reshape(-1), np.outer(u, v).reshape(-1))
    for m in R.matrices:
        np.testing.assert_allclose(np.einsum("g,gij->ij", conv, m),
                                   np.einsum("g,gij->ij", u, m) @ np.einsum("g,gij->ij", v, m), atol=1e-9)


def test_irrep_basis_orthonormal_and_sized_by_class():
    B = irrep_basis("S4")
    np.testing.assert_allclose(B.values @ B.values.T, np.eye(24), atol=1e-10)
    sizes = {k: int((B.irrep.values == k).sum()) for k in dict.fromkeys(B.irrep.values)}
    assert sizes == {"1": 1, "1b": 1, "2a": 4, "3a": 9, "3b": 9}
    assert int((irrep_basis("A4").irrep.values == "1b+1c").sum()) == 2


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown group"):
        irreps("T9")
    with pytest.raises(ValueError, match="rows"):
        group_fourier(np.zeros(5), "S3")
