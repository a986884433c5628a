"""kappa_select: κ of known matrices, PEFT's selection rule (top_p / num / threshold), PEFT itself if installed."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.spectrum import kappa_select

KAPPAS = {"a": 5.0, "b": 2.0, "c": 9.0, "d": 2.0}  # planted condition numbers, "b" and "d" tied


def planted_model() -> nn.Module:
    """Linear layers whose weights are Q diag(s) Rᵀ with s from 1 to κ (so σ_0/σ_last = κ), and an
    embedding and a 1-D parameter that PEFT's rule ignores."""
    gen = torch.Generator().manual_seed(0)
    model = nn.Module()
    for name, kappa in KAPPAS.items():
        layer = nn.Linear(4, 6)
        Q = torch.linalg.qr(torch.randn(6, 4, generator=gen))[0]
        R = torch.linalg.qr(torch.randn(4, 4, generator=gen))[0]
        with torch.no_grad():
            layer.weight.copy_(Q @ torch.diag(torch.linspace(1.0, kappa, 4)) @ R.T)
        model.add_module(name, layer)
    model.emb = nn.Embedding(10, 3)
    model.scale = nn.Parameter(torch.ones(3))
    return model


def test_kappa_of_known_matrices_and_the_selection_rule():
    ds = kappa_select(planted_model())
    assert ds.layer.values.tolist() == ["b", "d", "a", "c"]  # ascending κ, the tie in model order
    np.testing.assert_allclose(ds.kappa.values, [2.0, 2.0, 5.0, 9.0], rtol=1e-5)
    assert ds.selected.values.all() and ds.n_params.values.tolist() == [30] * 4  # 6×4 weight and 6 biases
    assert kappa_select(planted_model(), num=2).selected.values.tolist() == [True, True, False, False]
    assert kappa_select(planted_model(), num=9).selected.values.all()
    assert kappa_select(planted_model(), top_p=0.5).selected.values.sum() == 2
    assert kappa_select(planted_model(), top_p=0.1).selected.values.sum() == 1  # max(1, int(n · top_p))
    assert kappa_select(planted_model(), threshold=5.0).selected.values.tolist() == [True, True, True, False]
    with_emb = kappa_select(planted_model(), module_types=(nn.Linear, nn.Embedding))
    assert "emb" in with_emb.layer.values and with_emb.sizes["layer"] == 5
    assert kappa_select(planted_model(), max_dim=6).sizes["layer"] == 4
    with pytest.raises(ValueError, match="no Linear module"):  # every weight has a dim above 5: none scored
        kappa_select(planted_model(), max_dim=5)


def test_zero_smallest_singular_value_and_bad_input():
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.diag(torch.tensor([2.0, 1.0, 0.0])))
    np.testing.assert_allclose(kappa_select(model).kappa.values, [2.0 / 1e-8], rtol=1e-6)
    with pytest.raises(ValueError, match="at most one"):
        kappa_select(model, top_p=0.5, num=1)
    with pytest.raises(ValueError, match="top_p"):
        kappa_select(model, top_p=0.0)
    with pytest.raises(ValueError, match="no Linear module"):
        kappa_select(nn.Embedding(3, 2))


def test_equals_peft_kappatune_selector():
    peft = pytest.importorskip("peft")
    selector = peft.helpers.KappaTuneSelector(planted_model(), show_progress=False)
    for kwargs in ({"top_p": 0.5}, {"threshold": 5.0}, {}):
        ours = kappa_select(planted_model(), **kwargs)
        assert ours.layer.values[ours.selected.values].tolist() == selector.get_best_targets(**kwargs)
    ours = kappa_select(planted_model(), num=3)
    assert ours.layer.values[ours.selected.values].tolist() == selector.get_best_targets(num_modules=3)
