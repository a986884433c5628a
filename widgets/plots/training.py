"""Training curves: a run's ``metrics()`` Dataset → loss / accuracy plotly Figures.

Used by the run browser (``widgets/apps/runs.py``), the JupyterLab explorer
(``widgets/explorers.py``) and the tour notebook. Pure: no I/O, no compute beyond selecting steps.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr

from .empty import empty_figure

__all__ = ["accuracy_curves", "curve_variables", "loss_curves", "metric_curves"]

LOSS_VARS = ("train_loss", "test_loss")
ACC_VARS = ("train_acc", "test_acc")
COLORS = {"train": "#1f77b4", "test": "#d62728"}


def curve_variables(ds: xr.Dataset) -> list[str]:
    """Names of the 1-D numeric variables of ``ds`` along ``step`` (what can be drawn as a curve)."""
    _check_dataset(ds)
    return [name for name, var in ds.data_vars.items()
            if var.dims == ("step",) and np.issubdtype(var.dtype, np.number)]


def _check_dataset(ds: xr.Dataset) -> None:
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds must be an xarray.Dataset (a run's metrics()), got {type(ds).__name__}")
    if "step" not in ds.dims and ds.data_vars:
        raise ValueError(f"ds must have a 'step' dimension, got dims {tuple(ds.dims)}")


def _trace(ds: xr.Dataset, name: str, log_x: bool) -> go.Scatter:
    """One line for variable ``name``: steps where it was not recorded are left out.

    Metric groups are merged on ``step`` with an outer join, so a variable logged every 100 steps is
    NaN at the steps of a variable logged every 10; those alignment gaps are skipped, not drawn as 0.
    With ``log_x`` step 0 cannot be placed on the axis and is left out too.
    """
    da = ds[name]
    keep = np.isfinite(da.values)
    if log_x:
        keep &= ds["step"].values > 0
    split = name.split("_", 1)[0]
    return go.Scatter(x=ds["step"].values[keep], y=da.values[keep], mode="lines", name=name,
                      line={"color": COLORS.get(split), "dash": "dot" if split == "test" else None}
                      if split in COLORS else {})


def metric_curves(ds: xr.Dataset, variables: list[str] | tuple[str, ...], *, title: str = "",
                  y_title: str = "", log_x: bool = False, log_y: bool = False,
                  marker_step: int | None = None) -> go.Figure:
    """Curves of ``variables`` of ``ds`` against ``step``.

    Parameters
    ----------
    ds : xr.Dataset
        Metrics with a ``step`` dimension (``Run.metrics()``).
    variables : sequence of str
        Variables to draw; each must be a 1-D variable along ``step``.
    log_x, log_y : bool
        Logarithmic axes (step 0 is left out on a log-x axis).
    marker_step : int, optional
        Draw a vertical line at this step (e.g. the step picked in an explorer).
    """
    _check_dataset(ds)
    available = curve_variables(ds) if ds.data_vars else []
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise ValueError(f"variables {missing} are not in the metrics; available: {available}")
    wrong = [v for v in variables if v not in available]
    if wrong:
        raise ValueError(f"variables {wrong} are not 1-D numeric series along 'step'")
    traces = [_trace(ds, v, log_x) for v in variables]
    if not any(len(t.x) for t in traces):
        return empty_figure("no metrics recorded yet", title=title)
    fig = go.Figure(traces)
    fig.update_layout(title=title, template="plotly_white", margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "y": -0.2}, hovermode="x unified", uirevision="keep")
    fig.update_xaxes(title="step", type="log" if log_x else "linear")
    fig.update_yaxes(title=y_title, type="log" if log_y else "linear")
    if marker_step is not None:
        fig.add_vline(x=marker_step, line={"color": "gray", "dash": "dash", "width": 1})
    return fig


def loss_curves(ds: xr.Dataset, log_x: bool = False, marker_step: int | None = None) -> go.Figure:
    """Train and test cross-entropy loss (log y) against step.

    A grokking run (Power et al. 2022, arXiv:2201.02177, Fig. 1) shows train loss falling early
    while test loss stays high, then drops much later; the log-y axis makes both phases visible.
    """
    present = [v for v in LOSS_VARS if v in ds.data_vars] if isinstance(ds, xr.Dataset) else []
    return metric_curves(ds, present, title="loss", y_title="cross-entropy", log_x=log_x, log_y=True,
                         marker_step=marker_step)


def accuracy_curves(ds: xr.Dataset, log_x: bool = False, marker_step: int | None = None) -> go.Figure:
    """Train and test accuracy in [0, 1] against step (Power et al. 2022, Fig. 1)."""
    present = [v for v in ACC_VARS if v in ds.data_vars] if isinstance(ds, xr.Dataset) else []
    fig = metric_curves(ds, present, title="accuracy", y_title="accuracy", log_x=log_x,
                        marker_step=marker_step)
    fig.update_yaxes(range=[-0.02, 1.02])
    return fig
