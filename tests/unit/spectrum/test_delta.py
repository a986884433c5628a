"""delta_spectrum on planted rank increments, from a mapping and from a run; the gradual-rank toy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from workbench.spectrum import delta_spectrum, gradual_rank_toy
from workbench.store import RunStore
from workbench.trajectory import ParameterRecorder

S = np.array([3.0, 2.0, 1.0, 0.5])  # planted singular values of ΔW
RANKS = [0, 1, 1, 2, 3, 4, 4]  # r(t) at steps 0, 10, 20, ...


def planted_states():
    """W_t = W_0 + Σ_{i ≤ r(t)} s_i u_i v_iᵀ for a (7, 5) and a (6, 2, 3) weight (reshaped to (6, 6))."""
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Conv1d(6, 6, 3, bias=False))  # 2-D and 3-D weights
    w0 = {k: v.detach().clone().double() for k, v in model.state_dict().items()}
    U = {"0.weight": torch.linalg.qr(torch.randn(7, 4, generator=gen, dtype=torch.float64))[0],
         "1.weight": torch.linalg.qr(torch.randn(6, 4, generator=gen, dtype=torch.float64))[0]}
    V = {"0.weight": torch.linalg.qr(torch.randn(5, 4, generator=gen, dtype=torch.float64))[0],
         "1.weight": torch.linalg.qr(torch.randn(18, 4, generator=gen, dtype=torch.float64))[0]}
    states = {}
    for t, r in enumerate(RANKS):
        state = dict(w0)
        for k in U:
            delta = (U[k][:, :r] * torch.as_tensor(S[:r])) @ V[k][:, :r].T
            state[k] = w0[k] + delta.reshape(w0[k].shape)
        states[10 * t] = state
    return model, states


def check_planted(ds):
    assert list(ds.layer.values) == ["0", "1"]
    assert ds.sizes["sv"] == 6 and list(ds.rows.values) == [7, 6] and list(ds.cols.values) == [5, 18]
    for t, r in enumerate(RANKS):
        row = ds.isel(step=t)
        np.testing.assert_array_equal(row.numerical_rank.values, [r, r])
        expected = (S[:r] ** 2).sum() / S[0] ** 2 if r else 0.0
        np.testing.assert_allclose(row.stable_rank.values, [expected] * 2, rtol=1e-5)
        np.testing.assert_allclose(row.sigma_max.values, [S[0] if r else 0.0] * 2, rtol=1e-5)
        if r:
            np.testing.assert_allclose(row.sv_norm.values[:, :r], np.tile(S[:r] / S[0], (2, 1)), rtol=1e-5)
            assert np.all(row.sv_norm.values[:, r:4] < 1e-5)
    assert np.isnan(ds.sv_norm.values[:, 0, 5:]).all() and np.isnan(ds.sv_norm.values[0]).all()


def test_planted_rank_increments_from_a_mapping():
    _, states = planted_states()
    ds = delta_spectrum(states, rtol=1e-3)
    check_planted(ds)
    assert ds.step.values.tolist() == [10 * t for t in range(len(RANKS))]
    # an absolute floor drops the planted 0.5 direction; rtol above 1/3 keeps only s_1 = 3 and s_2 = 2
    assert delta_spectrum(states, atol=0.6).numerical_rank.values[-1].tolist() == [3, 3]
    assert delta_spectrum(states, rtol=0.6).numerical_rank.values[-1].tolist() == [2, 2]
    assert delta_spectrum(states, layers="^0$").layer.values.tolist() == ["0"]


def test_planted_rank_increments_from_a_run(tmp_path):
    model, states = planted_states()
    run = RunStore(tmp_path).create({"kind": "delta-test"})
    rec = ParameterRecorder(model, project_dim=None)
    for step, state in states.items():
        model.load_state_dict({k: v.float() for k, v in state.items()})
        run.append_trajectory(step, rec(model), attrs=rec.attrs())
    run.save_checkpoint(60, model)
    check_planted(delta_spectrum(run, rtol=1e-3))  # the trajectory (float32), shapes from the checkpoint
    only = delta_spectrum(run, source="checkpoints", init={k: v.float() for k, v in states[0].items()}, rtol=1e-3)
    assert only.step.values.tolist() == [60] and only.numerical_rank.values.tolist() == [[4, 4]]


def test_bad_input(tmp_path):
    _, states = planted_states()
    with pytest.raises(ValueError, match="rtol"):
        delta_spectrum(states, rtol=0)
    with pytest.raises(TypeError, match="Run or a non-empty mapping"):
        delta_spectrum({})
    with pytest.raises(ValueError, match="no weight tensor"):
        delta_spectrum(states, layers="nothing")
    broken = {**states, 70: {k: v * np.nan for k, v in states[60].items()}}
    with pytest.raises(ValueError, match="step 70: layer '0' holds NaN"):
        delta_spectrum(broken)
    with pytest.raises(ValueError, match=r"steps \[5\] are not recorded"):
        delta_spectrum(states, steps=[0, 5])
    model = nn.Linear(3, 2)
    run = RunStore(tmp_path).create({"kind": "delta-jl"})
    rec = ParameterRecorder(model, project_dim=4)
    run.append_trajectory(0, rec(model), attrs=rec.attrs())
    run.save_checkpoint(0, model)
    with pytest.raises(ValueError, match="projected trajectory"):
        delta_spectrum(run, source="trajectory")


def test_gradual_rank_toy_stages_scale_with_log_inverse_alpha():
    """Boix-Adsera et al. 2023: stages at fixed t/log(1/α); the rank of ΔW grows by at most one per stage."""
    lr, n = 0.1, 24.0  # train to t / log(1/α) = 24
    runs = {a: gradual_rank_toy(a, steps=math.ceil(n * math.log(1 / a) / lr), lr=lr, every=10, n_samples=64)
            for a in (1e-2, 1e-3)}
    crossing = {}
    for alpha, ds in runs.items():
        ranks = ds.numerical_rank.values
        assert ranks[0].tolist() == [0, 0, 0, 0]
        assert np.diff(ranks, axis=0).max() <= 1 and np.diff(ranks, axis=0).min() >= 0
        assert ranks[-1].tolist() == [2, 2, 3, 3]  # the teacher's: a* rank 2 (W_Q, W_K), b* rank 3 (W_V, W_O)
        loss, rt = ds.loss.values, ds.rescaled_time.values
        plateau = loss[(rt > 11.5) & (rt < 13.5)]
        assert plateau.max() / plateau.min() < 1.1 and plateau.max() < loss[0] / 4  # a stage: flat, after a drop
        crossing[alpha] = {c: rt[np.argmax(loss < c)] for c in (0.5, 0.1)}
    for c in (0.5, 0.1):  # stage ends coincide in t/log(1/α) (within 10%), not in t (ratio log(1000)/log(100) = 1.5)
        ratio = crossing[1e-3][c] / crossing[1e-2][c]
        assert abs(ratio - 1) < 0.1, (c, crossing)


def test_delta_and_compressibility_probes_record_over_training(tmp_path):
    from workbench.grokking.mlp import MLP
    from workbench.spectrum import make_compressibility_probe, make_delta_probe
    from workbench.tasks.modular import ModularTask
    from workbench.train import default_optimizer, fit

    model, task = MLP(5, 4, 8, seed=0), ModularTask(p=5, frac=0.6)
    run = RunStore(tmp_path).create({"kind": "delta-probe"})
    rec = ParameterRecorder(model, project_dim=None)
    probes = {"delta": (make_delta_probe(model.state_dict()), 5),
              "compress": (make_compressibility_probe(codecs=("gzip",)), 5)}
    fit(model, task, default_optimizer(model, lr=1e-2), 10, run=run, probes=probes, trajectory_every=5,
        trajectory=rec, eval_every=5, progress=False)
    recorded = run.metrics("delta")
    assert recorded.step.values.tolist() == [0, 5, 10] and recorded.numerical_rank.sel(step=0).values.tolist() == [0] * 3
    offline = delta_spectrum(run)  # the same numbers from the recorded trajectory
    np.testing.assert_allclose(recorded.stable_rank.values, offline.stable_rank.values, rtol=1e-6)
    assert run.metrics("compress").ratio.dims == ("step", "codec")
