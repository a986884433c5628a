"""Li²: the model, its energy and where the energy's maxima lie, the centred MSE and ridge top layer,
the back-propagated gradient's structure and the stage rule, a quick run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr

from workbench.grokking.li2 import Li2MLP, li2_ascent, li2_energy, li2_loss
from workbench.grokking.li2_stages import detect_li2_stages, gradient_structure
from workbench.grokking.li2_train import Li2Config, ridge_top_layer, steps_to, train_li2
from workbench.grokking.margin import irrep_usage, normalized_margin
from workbench.tasks.groups import GroupTask, group_from_name


def _onehots(n, x):
    return torch.cat([F.one_hot(x[:, 0], n), F.one_hot(x[:, 1], n)], 1).double()


def test_forward_is_v_sigma_w_onehot():
    model = Li2MLP(7, 16, seed=0).double()
    x = GroupTask("Z7", frac=0.5).train_x
    X = _onehots(7, x)
    torch.testing.assert_close(model(x), (X @ model.W.weight.T).pow(2) @ model.V.weight.T)


def test_energy_equals_the_dense_formula():
    g = group_from_name("S3")
    x = GroupTask("S3", frac=0.7, seed=1).train_x
    W = torch.randn(5, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    X, y = _onehots(6, x), torch.from_numpy(g.table)[x[:, 0], x[:, 1]]
    Y = F.one_hot(y, 6).double()
    Yc = Y - Y.mean(0)
    expected = 0.5 * (Yc.T @ (X @ W.T).pow(2)).pow(2).sum(0)
    np.testing.assert_allclose(li2_energy(W, g, pairs=x).values, expected.numpy(), rtol=1e-12)


@pytest.mark.parametrize(("group", "maxima"), [("Z11", {k: 11 / 4 for k in "12345"}),
                                                ("S3", {"1b": 3.0, "2a": 1.5}),
                                                ("D5", {"1b": 5.0, "2a": 2.5, "2b": 2.5})])
def test_ascent_ends_on_one_irrep_with_the_derived_energy(group, maxima):
    """x² on all pairs: maxima on one real irrep class, E = |G|/(2 d) (|G|/4 on a pair ±k of Z_p)."""
    ds = li2_ascent(group, n_starts=16, steps=500)
    assert float(ds.concentration.min()) > 0.999
    for e, k in zip(ds.energy.values, ds.best_irrep.values):
        assert e == pytest.approx(maxima[str(k)], rel=1e-4)


def test_centred_mse_equals_the_reference_expression():
    gen = torch.Generator().manual_seed(0)
    o, y = torch.randn(9, 5, generator=gen, dtype=torch.float64), torch.randint(0, 5, (9,), generator=gen)
    oz = o - o.mean(1, keepdim=True)  # yuandong-tian/understanding cogo compute_loss("mse")
    ref = oz.pow(2).sum(1).mean() - 2 * oz.gather(1, y[:, None]).mean() + 1 - 1 / 5
    torch.testing.assert_close(li2_loss(o, y, "mse"), ref)
    torch.testing.assert_close(li2_loss(o, y, "ce"), F.cross_entropy(o, y))


def test_ridge_top_layer_is_the_ridge_solution():
    model = Li2MLP(7, 32, seed=1).double()
    t = GroupTask("Z7", frac=0.6)
    ridge_top_layer(model, t.train_x, t.train_y, 1e-3)
    V = model.V.weight.detach().clone().requires_grad_(True)
    Fh = model.hidden_pre(t.train_x).pow(2).detach()
    Yc = F.one_hot(t.train_y, 7).double() - 1 / 7
    obj = (Fh @ V.T - Yc).pow(2).sum() + 1e-3 * V.pow(2).sum()
    (grad,) = torch.autograd.grad(obj, V)
    assert float(grad.abs().max()) < 1e-8


def test_gradient_alignment_is_one_in_the_independent_stage_and_small_at_random():
    """With V = ε (ỸᵀF)ᵀ (one small gradient step of the top layer from zero), −G_F = (2/N) Ỹ Ỹᵀ F + O(ε)."""
    t = GroupTask("D5", frac=0.7)
    model = Li2MLP(10, 64, seed=0).double()
    Fh = model.hidden_pre(t.train_x).pow(2).detach()
    Yc = F.one_hot(t.train_y, 10).double() - 0.1
    with torch.no_grad():
        model.V.weight.copy_(1e-6 * (Yc.T @ Fh))
    ds = gradient_structure(model, t.train_x, t.train_y, "mse")
    assert isinstance(ds, xr.Dataset) and float(ds.gf_alignment) > 0.9999
    with torch.no_grad():
        model.V.weight.copy_(torch.randn(10, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    assert abs(float(gradient_structure(model, t.train_x, t.train_y, "mse").gf_alignment)) < 0.3
    assert 0 < float(ds.feature_coupling) < 1


def test_stage_rule_on_synthetic_series():
    steps = np.arange(0, 1000, 100)
    align = np.array([0.0, 0.2, 0.5, 0.9, 1.0, 0.95, 0.9, 0.8, 0.7, 0.7])
    coupling = np.array([0.3, 0.3, 0.3, 0.3, 0.3, 0.28, 0.25, 0.2, 0.1, 0.1])
    ds = xr.Dataset({"gf_alignment": ("step", align), "feature_coupling": ("step", coupling)}, coords={"step": steps})
    out = detect_li2_stages(ds)
    assert out["boundaries"] == {"t1": 300, "t2": 700}
    assert out["stages"] == {"lazy": [0, 300], "independent": [300, 700], "interactive": [700, 900]}
    flat = ds.assign(feature_coupling=("step", np.full(10, 0.3)))
    assert detect_li2_stages(flat)["stages"]["interactive"] is None
    with pytest.raises(ValueError, match="gf_alignment"):
        detect_li2_stages(ds.drop_vars("gf_alignment"))


def test_quick_run_groks_with_centred_mse():
    cfg = Li2Config(group="Z23", frac=0.5, hidden=128, steps=400, eval_every=20, ridge=None, optimizer="adamw",
                    lr=1e-2, wd=1.0)
    model, ds = train_li2(cfg)
    assert float(ds.train_acc[-1]) == 1.0 and float(ds.test_acc[-1]) >= 0.95
    assert steps_to(ds) is not None and ds.attrs["group"] == "Z23"
    assert float(ds.gf_alignment.max()) > 0.3 > float(ds.gf_alignment[0])  # G_F takes the energy form
    assert float(ds.w_change[-1]) > 1.0  # W moved: features were learned, not only the top layer
    # Morwani et al.: every frequency used, neurons far more single-frequency than at random (~0.2)
    t = cfg.task()
    assert float(normalized_margin(model, t.train_x, t.train_y).margin_fraction) == 1.0
    assert float(normalized_margin(model, t.train_x, t.train_y).normalized_margin) > 0
    usage = irrep_usage(model, "Z23")
    assert int(usage.used) == int(usage.n_classes) == 11 and float(usage.weighted_concentration) > 0.5
    with pytest.raises(ValueError, match="ridge"):
        Li2Config(loss="ce")
