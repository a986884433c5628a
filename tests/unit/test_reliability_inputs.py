"""Public functions refuse the inputs the issue found with a named error (or skip and report them)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from workbench.grokking import fourier_basis
from workbench.grokking.fourier import all_logits, neuron_activations
from workbench.grokking.mlp import MLP
from workbench.optim.grokfast import Grokfast
from workbench.spectrum import analyze
from workbench.validation import check_range


def test_an_all_zero_weight_matrix_is_skipped_and_reported_not_a_zero_division():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(50, 60), nn.Linear(60, 40))
    with torch.no_grad():
        model[0].weight.zero_()
    ds = analyze(model, progress=False)
    assert list(ds.layer.values) == ["1"] and np.isfinite(ds.alpha.values).all()
    assert "all-zero" in str(ds.skip_reason.sel(skipped="0").item())
    with torch.no_grad():
        model[1].weight.zero_()
    with pytest.raises(ValueError, match="all-zero matrix"):
        analyze(model, progress=False)


def test_a_layer_over_max_n_names_max_n():
    with pytest.raises(ValueError, match=r"N=200000 > max_N=50000.*max_N"):
        analyze(nn.Linear(10, 200000), progress=False)
    assert analyze(nn.Linear(10, 200000), max_N=200000, progress=False).sizes["layer"] == 1


@pytest.mark.parametrize("kw, named", [({"alpha": math.nan}, "alpha"), ({"alpha": math.inf}, "alpha"),
                                       ({"lamb": math.nan}, "lamb"), ({"lamb": math.inf}, "lamb"),
                                       ({"lamb": -math.inf}, "lamb")])
def test_grokfast_refuses_nan_and_inf_hyperparameters(kw, named):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(3))], lr=0.1)
    with pytest.raises(ValueError, match=f"{named} must be a finite number"):
        Grokfast(opt, **kw)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_check_range_refuses_non_finite_values_whatever_the_bounds(value):
    with pytest.raises(ValueError, match="x must be a finite number"):
        check_range(value, "x")
    with pytest.raises(TypeError, match="x must be a number, got str"):
        check_range("abc", "x", 0.0)


@pytest.mark.parametrize("p", [9, 15, 21, 91, 4, 1])
def test_fourier_measures_refuse_a_modulus_that_is_not_prime(p):
    with pytest.raises(ValueError, match=f"p must be an odd prime >= 3 .*got {p}"):
        fourier_basis(p)


def test_fourier_measures_refuse_a_model_of_another_p():
    model = MLP(7, d_embed=4, d_hidden=8, seed=0)
    for fn in (all_logits, neuron_activations):
        with pytest.raises(ValueError, match="built for p=7, not p=11"):
            fn(model, 11)
    assert all_logits(model, 7).shape == (7, 7, 7)


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workbench.spectrum import esd
from workbench.tasks.modular import is_prime

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=60, deadline=None)
@given(alpha=ANY_FLOAT, lamb=st.one_of(st.none(), ANY_FLOAT))
def test_grokfast_accepts_exactly_the_finite_in_range_hyperparameters(alpha, lamb):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(3))], lr=0.1)
    valid = math.isfinite(alpha) and 0 <= alpha < 1 and (lamb is None or (math.isfinite(lamb) and lamb >= 0))
    if valid:
        assert Grokfast(opt, alpha=alpha, lamb=lamb).alpha == alpha
    else:
        with pytest.raises(ValueError, match="alpha|lamb"):
            Grokfast(opt, alpha=alpha, lamb=lamb)


@settings(max_examples=60, deadline=None)
@given(p=st.one_of(st.integers(-50, 200), st.integers(10**6, 10**18)))
def test_fourier_basis_accepts_exactly_the_odd_primes(p):
    if 3 <= p <= 200 and is_prime(p):
        assert fourier_basis(p).shape == (p, p)
    else:
        with pytest.raises(ValueError, match="odd prime" if p <= 200 else "too large"):
            fourier_basis(p)  # a huge p is refused before any allocation or primality test


@settings(max_examples=60, deadline=None)
@given(W=arrays(np.float64, st.tuples(st.integers(0, 12), st.integers(0, 12)),
                elements=st.floats(-1e6, 1e6) | st.sampled_from([math.nan, math.inf, -math.inf, 0.0])))
def test_esd_returns_finite_eigenvalues_or_names_what_is_wrong(W):
    if W.size == 0:
        with pytest.raises(ValueError, match="empty"):
            esd(W)
    elif not np.isfinite(W).all():
        with pytest.raises(ValueError, match="NaN/Inf"):
            esd(W)
    else:
        ev = esd(W)
        assert np.isfinite(np.asarray(ev)).all() and len(ev) == min(W.shape)
