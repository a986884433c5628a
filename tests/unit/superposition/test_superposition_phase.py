"""Phase diagram (n=2, m=1) against an independent numpy/scipy reference.

The reference never touches the project's trainer: it writes the *exact* expected loss of the toy
model ([1] eq. L = Σ_i I_i E(x_i − ReLU(W_iᵀ W x + b_i))²) as a sum over which features are active,
with Gauss–Legendre quadrature over the uniform values, and minimises it with scipy from several
starting configurations. A cell is *clear* when the best configuration of one phase beats every
configuration of the other phases by a relative margin; there the trained phase must agree.

[1] Elhage et al. (2022), Toy Models of Superposition, section "Phase Change".
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from workbench.superposition import phase_diagram

_U, _WU = np.polynomial.legendre.leggauss(64)
_U, _WU = (_U + 1) / 2, _WU / 2                       # nodes/weights on [0, 1]
_G1, _G2 = np.meshgrid(_U, _U, indexing="ij")
_W2 = np.outer(_WU, _WU)


def expected_loss(theta: np.ndarray, p: float, r: float) -> float:
    """Exact E[loss] of x' = ReLU(wᵀw x + b), n=2, m=1, feature probability p, importances (1, r)."""
    w1, w2, b1, b2 = theta
    relu = lambda z: np.maximum(z, 0.0)
    none = relu(b1) ** 2 + r * relu(b2) ** 2
    only1 = _WU @ ((_U - relu(w1 * w1 * _U + b1)) ** 2 + r * relu(w2 * w1 * _U + b2) ** 2)
    only2 = _WU @ (relu(w1 * w2 * _U + b1) ** 2 + r * (_U - relu(w2 * w2 * _U + b2)) ** 2)
    h = w1 * _G1 + w2 * _G2
    both = np.sum(_W2 * ((_G1 - relu(w1 * h + b1)) ** 2 + r * (_G2 - relu(w2 * h + b2)) ** 2))
    q = 1 - p
    return float(q * q * none + p * q * (only1 + only2) + p * p * both)


def reference_phase(p: float, r: float, margin: float = 0.15) -> str | None:
    """Phase of the loss minimum over several starts; None when the cell is not clear."""
    starts = [(1, 0, 0, p / 2), (0, 1, p / 2, 0), (1, -1, 0, 0), (1.2, -1.2, -0.2, -0.2),
              (0.8, -1.1, -0.05, -0.1), (1.1, -0.8, -0.1, -0.05)]
    best: dict[str, float] = {}
    for s in starts:
        res = minimize(expected_loss, np.array(s, float), args=(p, r), method="Nelder-Mead",
                       options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000})
        w1, w2 = abs(res.x[0]), abs(res.x[1])
        phase = ("superposition" if min(w1, w2) >= 0.5 else
                 "dedicated" if w2 >= 0.5 else "not_represented")
        best[phase] = min(best.get(phase, np.inf), res.fun)
    ranked = sorted(best.items(), key=lambda kv: kv[1])
    if len(ranked) > 1 and ranked[1][1] - ranked[0][1] < margin * ranked[0][1]:
        return None
    return ranked[0][0]


def test_reference_loss_matches_closed_form_for_single_feature_configs():
    # W=(1,0), b=(0, E x2): feature 1 perfect, feature 2 replaced by its mean → loss r·Var(x2).
    p, r = 0.3, 0.7
    var = p / 3 - (p / 2) ** 2
    assert expected_loss(np.array([1.0, 0.0, 0.0, p / 2]), p, r) == pytest.approx(r * var, rel=1e-9)
    assert expected_loss(np.array([0.0, 1.0, p / 2, 0.0]), p, r) == pytest.approx(var, rel=1e-9)


def test_phase_diagram_matches_reference_on_clear_cells():
    densities = np.array([0.03, 0.1, 0.3, 1.0])
    ratios = np.array([0.1, 0.5, 2.0, 10.0])
    ds = phase_diagram(2, 1, densities, ratios, n_inits=3, steps=1000, seed=0)
    assert ds["phase"].dims == ("density", "importance_ratio")
    assert ds["W"].dims == ("density", "importance_ratio", "hidden", "feature")
    agree, clear = 0, 0
    for i, p in enumerate(densities):
        for j, r in enumerate(ratios):
            ref = reference_phase(float(p), float(r))
            if ref is None:
                continue
            clear += 1
            got = str(ds["phase"].values[i, j])
            assert got == ref, f"density={p}, ratio={r}: trained {got}, reference {ref}"
            agree += 1
    assert clear >= 10, f"too few clear cells ({clear}) to test anything"
    # all three phases appear in the reference-clear region of this grid (paper's fig.)
    assert set(ds["phase"].values.ravel()) == {"not_represented", "dedicated", "superposition"}
