"""Spectrum figure builders: axes span the data (not the fitted lines), labels sit on their lines."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from widgets.plots.empty import empty_figure, is_empty
from widgets.plots.spectrum import alpha_by_layer, esd_plot
from workbench.spectrum import analyze


@pytest.fixture(scope="module")
def large_weights():
    """Two layers with eigenvalues in the hundreds: an annotation placed in data units would sit at 10^xmin."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Linear(128, 64))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(30)
    return analyze(model, keep_evals=True)


def test_esd_axes_span_the_eigenvalues(large_weights):
    ds = large_weights
    for layer in [str(x) for x in ds.layer.values]:
        fig = esd_plot(ds, layer)
        ev = ds.eigenvalues.sel(layer=layer).values
        ev = ev[np.isfinite(ev) & (ev > 0)]
        lo, hi = fig.layout.xaxis.range
        assert np.log10(ev.min()) - 0.2 <= lo <= np.log10(ev.min())
        assert np.log10(ev.max()) <= hi <= np.log10(ev.max()) + 0.2
        for trace in fig.data:  # no line runs past the data
            assert np.max(trace.x) <= ev.max() * (1 + 1e-9)
        xmin = float(ds.xmin.sel(layer=layer))
        (note,) = [a for a in fig.layout.annotations if a.text.startswith("xmin")]
        assert note.x == pytest.approx(np.log10(xmin))  # on its line (annotations are log10 on log axes)
        assert fig.layout.shapes[0].x0 == pytest.approx(xmin)  # shapes take data values
        hist = next(t for t in fig.data if t.name == "ESD").y
        y_lo, y_hi = fig.layout.yaxis.range
        assert y_lo <= np.log10(min(hist)) and np.log10(max(hist)) <= y_hi <= np.log10(max(hist)) + 1.5


def test_alpha_by_layer_stays_readable_with_many_layers(large_weights):
    few = alpha_by_layer(large_weights)
    assert list(few.layout.xaxis.ticktext) == ["0", "1"]
    many = large_weights.isel(layer=[0, 1] * 20)
    many = many.assign_coords(layer=[f"encoder.layer.{i}.attention.output.dense" for i in range(40)])
    fig = alpha_by_layer(many)
    trace = fig.data[0]
    assert list(trace.x) == list(range(40))  # index axis, no 40 rotated names
    assert fig.layout.xaxis.ticktext is None and fig.layout.xaxis.tickangle is None
    assert list(trace.customdata)[5] == "encoder.layer.5.attention.output.dense"
    assert "%{customdata}" in trace.hovertemplate


def test_empty_figure_has_no_axes():
    fig = empty_figure("nothing recorded")
    assert is_empty(fig) and fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False
    assert fig.layout.annotations[0].text == "nothing recorded" and not fig.data
    with pytest.raises(ValueError, match="message"):
        empty_figure("")
