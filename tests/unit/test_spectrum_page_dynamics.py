"""Spectra page: the KappaTune selection of the analysed model and a run's compressibility curve."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from widgets.apps.spectrum import compressibility_figure, compute_spectrum, kappatune_line
from workbench.spectrum import kappa_select, make_compressibility_probe
from workbench.store import RunStore


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(*(nn.Linear(32, 32) for _ in range(5)))
    with torch.no_grad():                          # known condition numbers: κ = 1, 2, …, 5 (×σ)
        for k, layer in enumerate(model):
            q, _ = torch.linalg.qr(torch.randn(32, 32))
            s = torch.linspace(1.0, float(k + 1), 32)
            layer.weight.copy_(q * s)
    return model


def test_the_page_names_the_modules_kappatune_would_tune():
    ds = compute_spectrum(_model())
    assert ds.attrs["kappatune"] == ["0"]          # the lowest-κ fifth of 5 modules: κ = 1
    assert ds.attrs["kappatune"] == [str(m) for m in kappa_select(_model(), top_p=0.2).layer.values[:1]]
    line = kappatune_line(ds)
    assert "lowest-κ linear modules: `0`" in line and kappatune_line(None) == ""


def test_a_run_that_recorded_compressibility_gets_its_curve(tmp_path):
    store = RunStore(tmp_path)
    run = store.create({"kind": "mine", "seed": 0})
    probe = make_compressibility_probe(codecs=("gzip", "bz2"))
    model = _model()
    for step in (0, 10, 20):
        run.append(probe(model).expand_dims(step=[step]), group="compress")
    fig = compressibility_figure(store, run.id)
    assert [t.name for t in fig.data] == ["gzip", "bz2"]
    np.testing.assert_array_equal(fig.data[0].x, [0, 10, 20])
    assert compressibility_figure(store, store.create({"kind": "other", "seed": 1}).id) is None
