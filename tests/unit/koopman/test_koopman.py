"""Koopman estimators against analytic eigenvalues, PyDMD, and the ResDMD residual theory."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
import torch
from scipy.optimize import linear_sum_assignment

from workbench.koopman import DMD, EDMD, RBF, HankelDMD, Monomials, RandomFourier, ResDMD
from workbench.koopman.dictionaries import Delays


def match_error(found, expected) -> float:
    """Largest distance after the optimal one-to-one matching of two eigenvalue sets."""
    found, expected = np.asarray(found), np.asarray(expected)
    assert found.shape == expected.shape
    cost = np.abs(found[:, None] - expected[None, :])
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].max())


def planted_system(n_features=100, n_time=60, noise=0.0, seed=0):
    """x_t = Q B^t z0: 5 rotation blocks, |λ| in [0.9, 1], random orthonormal basis Q."""
    rng = np.random.default_rng(seed)
    lams, blocks = [], []
    for k in range(5):
        r, th = 0.9 + 0.1 * k / 4, 0.3 + 0.5 * k
        lams += [r * np.exp(1j * th), r * np.exp(-1j * th)]
        blocks.append(r * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]))
    B = sla.block_diag(*blocks)
    Q, _ = np.linalg.qr(rng.standard_normal((n_features, 10)))
    z, rows = rng.standard_normal(10), []
    for _ in range(n_time):
        rows.append(z)
        z = B @ z
    X = np.array(rows) @ Q.T
    return X + noise * rng.standard_normal(X.shape), np.array(lams)


@pytest.mark.parametrize("method", ["svd", "gram", "randomized"])
def test_planted_eigenvalues_recovered(method):
    X, lams = planted_system()
    dmd = DMD(rank=10, method=method).fit(X)
    assert match_error(dmd.eigs_, lams) < 1e-8
    assert np.abs(dmd.reconstruct() - X).max() < 1e-8
    assert np.abs(dmd.predict(5, X[-6]) - X[-5:]).max() < 1e-8
    assert dmd.residuals_.max() < 1e-8  # true eigenpairs have residual ~0


def test_tall_data_uses_gram_and_matches_svd():
    X, lams = planted_system(n_features=3000, n_time=40, noise=1e-3, seed=1)
    a, b = DMD(10, method="auto").fit(X), DMD(10, method="svd").fit(X)
    assert match_error(a.eigs_, b.eigs_) < 1e-10
    assert match_error(a.eigs_, lams) < 1e-2  # graceful with noise


def test_gram_route_amplitudes_equal_least_squares_on_modes():
    """Amplitudes from the Gram blocks (normal equations) = a QR least-squares fit Φ b ≈ x0."""
    X, _ = planted_system(n_features=3000, n_time=40, noise=1e-3, seed=2)
    dmd = DMD(10, method="gram").fit(X)
    b_ref = np.linalg.lstsq(dmd.modes_.T, X[0].astype(complex), rcond=None)[0]
    assert np.abs(dmd.amplitudes_ - b_ref).max() < 1e-10 * np.abs(b_ref).max()
    svd = DMD(10, method="svd").fit(X)  # modes are scaled differently; the fitted state is the same
    assert np.abs(svd.amplitudes_ @ svd.modes_ - dmd.amplitudes_ @ dmd.modes_).max() < 1e-10 * np.abs(X[0]).max()


def test_gram_is_symmetric_syrk_and_lstsq_from_gram_refuses_ill_conditioning():
    from workbench.koopman.linalg import gram, lstsq_from_gram

    A = torch.from_numpy(np.random.default_rng(0).standard_normal((7, 50)))
    assert torch.allclose(gram(A), A @ A.mT, rtol=0, atol=1e-12) and torch.equal(gram(A), gram(A).mT)
    assert torch.allclose(gram(A.float()), (A @ A.mT).float(), atol=1e-4)
    twin = torch.cat([A[:, :1], A[:, :1] * (1 + 1e-12)], dim=1).mT  # (2, 7): Φ = Yᵀ I, two equal columns
    assert lstsq_from_gram(torch.eye(2, dtype=torch.float64), gram(twin), twin @ A[:, 0]) is None


def test_rank_rules():
    X, _ = planted_system()
    assert DMD(method="svd").fit(X).rank_ == 10  # numerical rank
    assert DMD(0.999999, method="svd").fit(X).rank_ <= 10
    noisy, _ = planted_system(noise=1e-4, seed=3)
    assert DMD("optimal", method="svd").fit(noisy).rank_ == 10  # Gavish–Donoho separates signal from noise


def test_omega_and_to_dataset():
    mu, lam, dt = -0.05, -1.0, 0.1
    t = np.arange(40) * dt
    rows = []
    for x1, x2 in [(1.0, 0.5), (-0.7, 0.2), (0.4, -1.0)]:
        # slow manifold: x1' = μx1, x2' = λ(x2 − x1²); observables (x1, x2, x1²) evolve linearly
        b = lam / (lam - 2 * mu)
        y0 = x1**2
        X1 = x1 * np.exp(mu * t)
        X2 = (x2 - b * y0) * np.exp(lam * t) + b * y0 * np.exp(2 * mu * t)
        rows.append(np.stack([X1, X2, X1**2], 1))
    X = np.concatenate([r[:-1] for r in rows])
    Y = np.concatenate([r[1:] for r in rows])
    dmd = DMD(3, dt=dt).fit(X, Y)
    assert match_error(dmd.omega_, [mu, lam, 2 * mu]) < 1e-8
    ds = dmd.to_dataset()
    assert set(ds.dims) == {"eig", "feature"} and ds.sizes["eig"] == 3
    np.testing.assert_allclose(ds.eig_real + 1j * ds.eig_imag, dmd.eigs_)


def test_equal_to_pydmd():
    pydmd = pytest.importorskip("pydmd")
    X, _ = planted_system(n_features=200, n_time=80, noise=1e-2, seed=4)
    ours = DMD(10, method="gram").fit(X)
    ref = pydmd.DMD(svd_rank=10, exact=True).fit(X.T)  # PyDMD: columns = time
    assert match_error(ours.eigs_, ref.eigs) < 1e-8
    # exact modes agree up to a complex scale per mode
    for k, lam in enumerate(ours.eigs_):
        j = int(np.argmin(np.abs(ref.eigs - lam)))
        a, b = ours.modes_[k], ref.modes[:, j]
        assert abs(abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)) - 1) < 1e-8


def test_hankel_damped_sinusoids():
    dt = 0.1
    t = np.arange(200) * dt
    x = np.exp(-0.1 * t) * np.cos(2 * t) + 0.5 * np.exp(-0.05 * t) * np.sin(5 * t + 1)
    h = HankelDMD(delays=6, rank=4, dt=dt).fit(x)
    assert match_error(h.omega_, [-0.1 + 2j, -0.1 - 2j, -0.05 + 5j, -0.05 - 5j]) < 1e-8
    assert np.abs(h.reconstruct()[:, 0] - x).max() < 1e-8
    t2 = np.arange(200, 210) * dt
    x2 = np.exp(-0.1 * t2) * np.cos(2 * t2) + 0.5 * np.exp(-0.05 * t2) * np.sin(5 * t2 + 1)
    assert np.abs(h.predict(10)[:, 0] - x2).max() < 1e-8
    e = EDMD(Delays(6), rank=4, dt=dt).fit(x[:, None])
    assert match_error(e.omega_, h.omega_) < 1e-8


def test_edmd_monomials_products_of_eigenvalues():
    rng = np.random.default_rng(0)
    P = np.array([[1.0, 0.5], [0.2, 1.0]])
    A = P @ np.diag([0.9, 0.8]) @ np.linalg.inv(P)
    X = rng.uniform(-1, 1, (50, 2))
    e = ResDMD(Monomials(2)).fit(X, X @ A.T)
    assert match_error(e.eigs_, [1, 0.9, 0.8, 0.81, 0.72, 0.64]) < 1e-8
    assert e.residuals_.max() < 1e-8
    assert np.abs(e.predict(2, X[0]) - np.stack([A @ X[0], A @ A @ X[0]])).max() < 1e-8
    phi = e.eigenfunctions(X)
    np.testing.assert_allclose(e.eigenfunctions(X @ A.T), phi * e.eigs_, atol=1e-8)


def pendulum_data(n=5000, energy=0.5, dt=0.5, seed=0):
    """Uniform samples of the invariant region {p²/2 − cos θ < energy} and their images after dt (RK4)."""
    rng = np.random.default_rng(seed)
    th, p = rng.uniform(-np.pi, np.pi, 4 * n), rng.uniform(-2.5, 2.5, 4 * n)
    keep = p**2 / 2 - np.cos(th) < energy
    x = np.stack([th[keep][:n], p[keep][:n]], 1)

    def f(s):
        return np.stack([s[:, 1], -np.sin(s[:, 0])], 1)

    y, h = x.copy(), dt / 10
    for _ in range(10):
        k1 = f(y)
        k2 = f(y + h / 2 * k1)
        k3 = f(y + h / 2 * k2)
        k4 = f(y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    def emb(s):  # θ is periodic: embed on the cylinder
        return np.stack([np.cos(s[:, 0]), np.sin(s[:, 0]), s[:, 1]], 1)

    return emb(x), emb(y)


def test_resdmd_pendulum_filters_spurious_eigenvalues():
    X, Y = pendulum_data()
    r = ResDMD(RBF(100, seed=0), tol=0.1).fit(X, Y)
    mod, res = np.abs(r.eigs_), r.residuals_
    # measure-preserving flow: the Koopman operator is unitary, spectrum on the unit circle, and a
    # residual bounds the distance to the spectrum (Colbrook & Townsend 2023, Thm. 4.1)
    assert (mod < 0.9).sum() >= 5  # EDMD produces spurious eigenvalues inside the disc ...
    assert res[mod < 0.9].min() > 0.3  # ... and ResDMD gives them large residuals
    kept = ~r.spurious_
    assert kept.sum() >= 5
    assert np.abs(mod[kept] - 1).max() < 0.02  # the filtered set lies on the unit circle
    assert np.all(np.abs(mod - 1) <= res + 0.02)


def test_pseudospectrum_grid():
    X, lams = planted_system(n_features=20, n_time=80, noise=0.0)
    r = ResDMD("identity", rank=10).fit(X)
    re, im = np.linspace(-1.2, 1.2, 25), np.linspace(-1.1, 1.1, 23)
    ps = r.pseudospectrum(re, im)
    assert ps.dims == ("imag", "real") and ps.shape == (23, 25)
    # τ vanishes at a true eigenvalue and is positive elsewhere
    at_eigs = r.pseudospectrum(lams.real[:1], lams.imag[:1])
    assert float(at_eigs.values[0, 0]) < 1e-8
    assert float(ps.min()) >= 0 and float(ps.max()) > 0.1
    # brute-force reference: smallest generalized eigenvalue of (L − zA* − z̄A + |z|²G, G)
    z = complex(re[3], im[5])
    psi_x, psi_y = X[:-1] @ r._P.numpy(), X[1:] @ r._P.numpy()
    M = len(psi_x)
    G, A, L = psi_x.T @ psi_x / M, psi_x.T @ psi_y / M, psi_y.T @ psi_y / M
    H = L - z * A.T - np.conj(z) * A + abs(z) ** 2 * G
    ref = np.sqrt(max(sla.eigh(H, G, eigvals_only=True).min(), 0))
    assert abs(float(ps.values[5, 3]) - ref) < 1e-6


def test_random_fourier_features_find_rotation_harmonics():
    # rotation of the circle by θ: Koopman eigenvalues e^{ikθ}; low-residual EDMD eigenvalues must be among them
    rng, th = np.random.default_rng(0), 0.7
    phi = rng.uniform(0, 2 * np.pi, 2000)
    X, Y = np.stack([np.cos(phi), np.sin(phi)], 1), np.stack([np.cos(phi + th), np.sin(phi + th)], 1)
    r = ResDMD(RandomFourier(100, seed=1), rank=15).fit(X, Y)
    good = r.eigs_[r.residuals_ < 1e-3]
    assert good.size >= 5
    k = np.round(np.angle(good) / th)
    np.testing.assert_allclose(good, np.exp(1j * k * th), atol=1e-3)
    again = ResDMD(RandomFourier(100, seed=1), rank=15).fit(X, Y)
    np.testing.assert_array_equal(again.eigs_, r.eigs_)  # seeded


@pytest.mark.parametrize("bad, match", [
    (np.array([[1.0, np.nan], [2.0, 3.0]]), "NaN"),
    (np.ones((1, 4)), "at least 2 snapshots"),
    (np.ones((5, 3)) + 1j, "complex"),
    (np.ones(5), "dimensions"),
])
def test_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        DMD().fit(bad)


def test_rank_too_large_and_bad_arguments():
    X, _ = planted_system()
    with pytest.raises(ValueError, match="exceeds the numerical rank"):
        DMD(11, method="svd").fit(X)
    with pytest.raises(ValueError, match="rank"):
        DMD("best").fit(X)
    with pytest.raises(ValueError, match="method"):
        DMD(method="qr")
    with pytest.raises(ValueError, match="dictionary"):
        EDMD("splines").fit(X)
    with pytest.raises(RuntimeError, match="not fitted"):
        DMD().predict(3)
    with pytest.raises(ValueError, match="y must have the same shape"):
        DMD().fit(X, X[:5])


def test_float32_and_tensor_input_give_float64_results():
    X, lams = planted_system()
    d = DMD(10).fit(torch.tensor(X))
    assert d.eigs_.dtype == np.complex128
    assert match_error(d.eigs_, lams) < 1e-8


def test_huge_finite_values_are_not_mistaken_for_inf():
    X, lams = planted_system()
    big = X * 1e306  # the sum overflows, every entry is finite: the slow exact check must clear it
    assert match_error(DMD(10, method="svd").fit(big).eigs_, lams) < 1e-8
