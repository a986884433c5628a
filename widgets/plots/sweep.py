"""Sweep results (``workbench.sweep.sweep`` / ``load_sweep`` Dataset) → phase-diagram heatmaps.

Pure: no I/O; the only compute is choosing the two axes to draw.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr

from .empty import empty_figure

__all__ = ["heatmap_cell", "sweep_heatmap", "sweep_variables"]

LABELS = {
    "steps_to_test_95": "steps to 95% test accuracy",
    "steps_to_train_95": "steps to 95% train accuracy",
    "final_test_acc": "final test accuracy",
    "final_train_acc": "final train accuracy",
    "final_test_loss": "final test loss",
    "final_train_loss": "final train loss",
    "seconds": "seconds of training",
}


def sweep_variables(ds: xr.Dataset) -> list[str]:
    """Numeric variables of a sweep Dataset that span all its grid axes (what can be drawn)."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds must be a sweep xarray.Dataset, got {type(ds).__name__}")
    return [n for n, v in ds.data_vars.items() if set(v.dims) == set(ds.dims) and np.issubdtype(v.dtype, np.number)]


def sweep_heatmap(ds: xr.Dataset, var: str = "steps_to_test_95", *, x: str | None = None,
                  y: str | None = None, title: str | None = None) -> go.Figure:
    """Heatmap of ``ds[var]`` over two grid axes: the phase diagram of a sweep.

    For ``steps_to_*_95`` (Power et al. 2022, Fig. 2) empty cells never reached 95% within the
    run. Hovering a cell shows its parameters, value and ``run_id``; each cell's ``customdata`` is
    its run id, so a click handler can open the run (:func:`heatmap_cell`). A variable with no
    finite value gives :func:`~widgets.plots.empty.empty_figure` saying why.

    Parameters
    ----------
    ds : Dataset from :func:`workbench.sweep.sweep` with 1 or 2 grid dims (select others first,
        e.g. ``ds.sel(seed=0)``) and string var ``run_id``.
    var : numeric variable to colour by (see :func:`sweep_variables`).
    x, y : grid axes for the columns / rows (default: last dim on x, first on y).
    """
    if var not in sweep_variables(ds):
        raise ValueError(f"var must be one of {sweep_variables(ds)}, got {var!r}")
    dims = list(ds[var].dims)
    if len(dims) > 2:
        raise ValueError(f"the sweep has {len(dims)} grid axes {dims}; select all but two first, "
                         f"e.g. ds.isel({dims[2]}=0)")
    if x is None:
        x = next((d for d in reversed(dims) if d != y), None)
    if y is None:
        y = next((d for d in dims if d != x), None)
    for name, axis in (("x", x), ("y", y)):
        if axis is not None and axis not in dims:
            raise ValueError(f"{name} must be one of the grid axes {dims}, got {axis!r}")
    order = [d for d in (y, x) if d is not None]
    z = ds[var].transpose(*order).values
    label = LABELS.get(var, var)
    if not np.isfinite(z).any():
        why = ("no run reached 95 % within its steps (train longer, or pick a final accuracy or loss)"
               if var.startswith("steps_to") else "no run has recorded it yet")
        return empty_figure(f"{label}: no value in any cell — {why}",
                            title=title or f"{ds.attrs.get('sweep_id', 'sweep')}: {label}", height=420)
    run_ids = ds["run_id"].transpose(*order).values if "run_id" in ds else np.full(z.shape, "", dtype=object)
    if y is None:  # one grid axis: a single row
        z, run_ids = z[None, :], run_ids[None, :]
    xs = [str(v) for v in ds[x].values]
    ys = [str(v) for v in ds[y].values] if y is not None else [""]
    text = np.where(np.isfinite(z), np.vectorize(lambda v: f"{v:.4g}")(np.nan_to_num(z)), "never"
                    if var.startswith("steps_to") else "")
    fig = go.Figure(go.Heatmap(
        z=z, x=xs, y=ys, customdata=run_ids, text=text, texttemplate="%{text}", colorscale="Viridis",
        colorbar={"title": {"text": label}}, name=var, hoverongaps=True,
        hovertemplate=f"{x}=%{{x}}<br>{y or ''}=%{{y}}<br>{label}=%{{z}}<br>run %{{customdata}}<extra></extra>"))
    fig.update_layout(title=title or f"{ds.attrs.get('sweep_id', 'sweep')}: {label}",
                      xaxis={"title": x, "type": "category"}, yaxis={"title": y or "", "type": "category"},
                      margin={"l": 60, "r": 20, "t": 50, "b": 50}, height=420)
    return fig


def heatmap_cell(fig: go.Figure, x: object, y: object) -> str | None:
    """The ``customdata`` (run id) of the cell at category labels ``x``, ``y`` of a
    :func:`sweep_heatmap` figure, or None. (Plotly's click on a heatmap reports the labels; its
    point number is a [row, column] pair that browsers' event bridges do not map to customdata.)"""
    heat = next((t for t in fig.data if t.type == "heatmap"), None)
    if heat is None or heat.customdata is None:
        return None
    xs, ys = [str(v) for v in heat.x], [str(v) for v in heat.y]
    if str(x) not in xs or str(y) not in ys:
        return None
    value = np.asarray(heat.customdata, dtype=object)[ys.index(str(y)), xs.index(str(x))]
    return str(value) if value else None
