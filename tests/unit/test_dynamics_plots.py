"""Training-dynamics figures: the right traces with the right points, clear input errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from tests.unit.spectrum.test_delta import RANKS, planted_states
from widgets.plots.dynamics import (
    compressibility_curves,
    delta_rank_curves,
    gradual_rank_figure,
    kappa_bars,
)
from workbench.spectrum import compressibility, delta_spectrum, gradual_rank_toy, kappa_select


def test_delta_rank_curves():
    _, states = planted_states()
    ds = delta_spectrum(states, rtol=1e-3)
    fig = delta_rank_curves(ds, layer="1", top=4)
    ranks = next(t for t in fig.data if t.name == "0 (numerical)")
    assert list(ranks.y) == RANKS and len(fig.data) == 2 * 2 + 4
    phases = {"phases": {"memorization": [0, 20]}, "grokked": True}
    assert len(delta_rank_curves(ds, phases=phases).layout.shapes) == 1
    with pytest.raises(ValueError, match="delta_spectrum"):
        delta_rank_curves(xr.Dataset({"x": ("step", [1.0])}))


def test_gradual_rank_figure():
    runs = [gradual_rank_toy(a, steps=40, lr=0.1, every=10, n_samples=8) for a in (1e-2, 1e-3)]
    fig = gradual_rank_figure(xr.concat(runs, dim=xr.DataArray([1e-2, 1e-3], dims="alpha", name="alpha")))
    assert len(fig.data) == 2 * (1 + 4) and len(fig.data[0].x) == 5
    np.testing.assert_allclose(fig.data[0].x, runs[0].rescaled_time.values)
    with pytest.raises(ValueError, match="alpha"):
        gradual_rank_figure(runs[0])


def test_kappa_bars_and_compressibility_curves():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    fig = kappa_bars(kappa_select(model, num=1))
    assert list(fig.data[0].text).count("selected") == 1 and len(fig.data[0].y) == 2
    states = {s: {"w": torch.full((8, 8), float(s))} for s in (0, 5, 10)}
    fig = compressibility_curves(compressibility(states, codecs=("gzip", "bz2")))
    assert [t.name for t in fig.data] == ["gzip", "bz2"] and list(fig.data[0].x) == [0, 5, 10]
    with pytest.raises(ValueError, match="step"):
        compressibility_curves(compressibility(model))


def test_spectrum_page_delta_panel(tmp_path):
    """The spectra page's ΔW panel: drawn from a run's ``delta`` probe group, absent without it."""
    from widgets.apps.spectrum import PRETRAINED, delta_figure
    from workbench.spectrum import make_delta_probe
    from workbench.store import RunStore

    _, states = planted_states()
    store = RunStore(tmp_path)
    run = store.create({"kind": "delta-page"})
    probe = make_delta_probe(states[0], rtol=1e-3)
    for step, state in states.items():
        run.append(probe(state).expand_dims(step=[step]), group="delta")
    fig = delta_figure(store, run.id)
    assert list(next(t for t in fig.data if t.name == "0 (numerical)").y) == RANKS
    assert delta_figure(store, store.create({"kind": "no-delta"}).id) is None
    assert delta_figure(store, PRETRAINED) is None


def test_embedded_cmd_curves():
    from widgets.plots.dynamics import embedded_cmd_curves
    from workbench.grokking.mlp import MLP
    from workbench.koopman import embedded_cmd_train
    from workbench.tasks.modular import ModularTask
    from workbench.train import default_optimizer

    task, runs = ModularTask(p=7, frac=0.6), []
    for pct in (0.0, 20.0):
        model = MLP(7, 4, 8, seed=0)
        runs.append(embedded_cmd_train(model, task, default_optimizer(model, lr=1e-2), 60, n_modes=2, n_samples=20,
                                       block=2, warmup=5, window=5, percent=pct, eval_every=10))
    ds = xr.concat([r.drop_dims(["param", "mode"]) for r in runs], dim=xr.DataArray(["plain", "embedded"],
                                                                                     dims="training"))
    fig = embedded_cmd_curves(ds)
    assert [t.name for t in fig.data] == ["plain", "plain", "embedded", "embedded"] and len(fig.data[0].x) == 6
    assert fig.data[1].y.max() == 0 and fig.data[3].y.max() > 0
    with pytest.raises(ValueError, match="training"):
        embedded_cmd_curves(runs[0])
