"""widgets.plots.training: curves carry exactly the metric values, gaps and log axes handled."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import xarray as xr

from widgets.plots import accuracy_curves, curve_variables, loss_curves, metric_curves
from widgets.plots.empty import is_empty


def metrics(n: int = 6) -> xr.Dataset:
    step = np.arange(n) * 10
    return xr.Dataset(
        {"train_loss": ("step", np.exp(-step / 20.0)), "test_loss": ("step", 3.0 - step / 100.0),
         "train_acc": ("step", np.linspace(0, 1, n)), "test_acc": ("step", np.linspace(0, 0.5, n)),
         "gini": ("step", np.full(n, np.nan)), "lr": ("step", np.full(n, 1e-3))},
        coords={"step": step})


def traces(fig: go.Figure) -> dict[str, go.Scatter]:
    return {t.name: t for t in fig.data}


def test_loss_curves_carry_the_values_on_log_y():
    ds = metrics()
    fig = loss_curves(ds)
    t = traces(fig)
    assert set(t) == {"train_loss", "test_loss"}
    np.testing.assert_array_equal(t["train_loss"].x, ds.step.values)
    np.testing.assert_allclose(t["train_loss"].y, np.exp(-ds.step.values / 20.0))
    np.testing.assert_allclose(t["test_loss"].y, 3.0 - ds.step.values / 100.0)
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.type == "linear"


def test_accuracy_curves_and_log_x_drop_step_zero():
    ds = metrics()
    fig = accuracy_curves(ds, log_x=True)
    t = traces(fig)
    assert set(t) == {"train_acc", "test_acc"}
    assert fig.layout.xaxis.type == "log"
    np.testing.assert_array_equal(t["test_acc"].x, ds.step.values[1:])  # 0 has no place on a log axis
    np.testing.assert_allclose(t["test_acc"].y, np.linspace(0, 0.5, 6)[1:])
    assert tuple(fig.layout.yaxis.range) == (-0.02, 1.02)


def test_alignment_gaps_are_skipped_not_zeroed():
    ds = metrics()
    ds["test_loss"] = ds.test_loss.where(ds.step % 20 == 0)  # recorded every 20 steps only
    t = traces(loss_curves(ds))
    np.testing.assert_array_equal(t["test_loss"].x, [0, 20, 40])
    np.testing.assert_allclose(t["test_loss"].y, [3.0, 2.8, 2.6])
    assert len(t["train_loss"].x) == 6


def test_marker_step_draws_a_vertical_line():
    fig = loss_curves(metrics(), marker_step=30)
    assert [s.x0 for s in fig.layout.shapes] == [30]
    assert not loss_curves(metrics()).layout.shapes


def test_empty_metrics_give_an_annotated_empty_figure():
    empty = xr.Dataset(coords={"step": np.zeros(0, dtype=np.int64)})
    fig = loss_curves(empty)
    assert len(fig.data) == 0
    assert "no metrics" in fig.layout.annotations[0].text
    assert fig.layout.xaxis.visible is False  # an empty state, not invented axes


def test_metric_curves_and_bad_input():
    ds = metrics()
    assert curve_variables(ds) == ["train_loss", "test_loss", "train_acc", "test_acc", "gini", "lr"]
    fig = metric_curves(ds, ["lr"], log_y=True)
    np.testing.assert_allclose(fig.data[0].y, 1e-3)
    assert is_empty(metric_curves(ds, ["gini"]))  # all-NaN: an empty state, nothing drawn
    with pytest.raises(ValueError, match="nope.*available"):
        metric_curves(ds, ["nope"])
    with pytest.raises(TypeError, match="xarray.Dataset"):
        loss_curves({"train_loss": [1.0]})
    with pytest.raises(ValueError, match="'step'"):
        loss_curves(xr.Dataset({"train_loss": ("time", [1.0, 2.0])}))
