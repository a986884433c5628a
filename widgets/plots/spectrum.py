"""Weight-spectrum figures: ``analyze`` / probe Datasets → plotly Figures, no compute beyond binning.

Inputs: ``workbench.spectrum.analysis.analyze(model, keep_evals=True)`` (dim ``layer``, var
``eigenvalues`` (layer, eig)) for ESDs; the spectrum probe's group of a run's metrics (dims
``step``, ``layer``) for the over-training views.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr

from widgets.plots._checks import require_vars
from workbench.spectrum.marchenko_pastur import mp_density

from .empty import empty_figure
from .grokking import _shade

__all__ = ["alpha_by_layer", "esd_plot", "metric_table", "spectrum_over_training"]


def _log_range(values: np.ndarray, pad: float = 0.1) -> list[float]:
    """A log-axis range (log10 units, as plotly wants) spanning ``values`` with ``pad`` decades spare."""
    lo, hi = np.log10(values.min()), np.log10(values.max())
    return [float(lo - pad), float(hi + pad)]


def esd_plot(ds: xr.Dataset, layer: str, *, bins: int = 60, mp: bool = True) -> go.Figure:
    """Log-log ESD of one layer with the fitted power-law tail and the fitted MP bulk.

    Histogram density on log-spaced bins; tail line p(x) = (n_tail/n) (alpha-1)/xmin (x/xmin)^-alpha
    for x >= xmin (Clauset et al. 2009 eq. 2.2); MP density (Martin & Mahoney 2021 eq. 7) with the
    fitted sigma_mp, drawn in the layer's eigenvalue units (the fit is on eigenvalues rescaled to
    unit mean, x' = x n / sum(lambda)). Both axes are set to the histogram's range, so the model
    lines (which can run off by many decades) never squeeze the data.
    """
    require_vars(ds, ("eigenvalues", "alpha", "xmin"), "analyze(..., keep_evals=True)")
    row = ds.sel(layer=layer)
    ev = row["eigenvalues"].values
    ev = ev[np.isfinite(ev) & (ev > 0)]
    if ev.size == 0:
        return empty_figure(f"{layer} has no positive finite eigenvalue to draw", title=f"ESD of {layer}")
    if ev.min() == ev.max():
        ev_lo, ev_hi = ev.min() / 1.5, ev.max() * 1.5
    else:
        ev_lo, ev_hi = ev.min(), ev.max()
    edges = np.logspace(np.log10(ev_lo), np.log10(ev_hi), bins + 1)
    hist, _ = np.histogram(ev, bins=edges, density=True)
    centers = np.sqrt(edges[1:] * edges[:-1])
    fig = go.Figure(go.Scatter(x=centers[hist > 0], y=hist[hist > 0], mode="markers", name="ESD",
                               marker={"color": "#1f77b4"}))
    alpha, xmin = float(row["alpha"]), float(row["xmin"])
    if np.isfinite(alpha) and np.isfinite(xmin) and xmin > 0:
        frac = float(row["tail_size"]) / ev.size if "tail_size" in row else 1.0
        x = np.logspace(np.log10(xmin), np.log10(ev_hi), 50)
        fig.add_trace(go.Scatter(x=x, y=frac * (alpha - 1) / xmin * (x / xmin) ** -alpha, mode="lines",
                                 name=f"power law α={alpha:.2f}", line={"color": "#d62728", "dash": "dash"}))
        # shapes take data values on a log axis, annotations take log10 values (plotly convention)
        fig.add_vline(x=xmin, line={"color": "#d62728", "width": 1})
        fig.add_annotation(x=float(np.log10(xmin)), y=1, xref="x", yref="y domain", showarrow=False,
                           text=f"xmin={xmin:.3g}", xanchor="left", yanchor="top",
                           font={"color": "#d62728"})
    if mp and "sigma_mp" in row and np.isfinite(float(row["sigma_mp"])) and "N" in row.coords:
        q = float(row["N"]) / float(row["M"])
        scale = ev.size / ev.sum()
        x = np.logspace(np.log10(ev_lo), np.log10(ev_hi), 400)
        y = mp_density(x * scale, q, float(row["sigma_mp"])) * scale
        keep = y > 0
        fig.add_trace(go.Scatter(x=x[keep], y=y[keep], mode="lines", name="MP bulk fit",
                                 line={"color": "#2ca02c"}))
    x_range = _log_range(np.array([ev_lo, ev_hi]))
    y_range = _log_range(hist[hist > 0], pad=1.0)
    fig.update_layout(title=f"ESD of {layer}", template="plotly_white",
                      xaxis={"type": "log", "title": "eigenvalue λ of WᵀW", "range": x_range},
                      yaxis={"type": "log", "title": "density", "range": y_range})
    return fig


def alpha_by_layer(ds: xr.Dataset, reference: xr.DataArray | None = None, *, var: str = "alpha",
                   reference_name: str = "WeightWatcher", max_tick_labels: int = 12) -> go.Figure:
    """``var`` per layer (in model order); optionally a reference (e.g. WeightWatcher's alphas) on
    the same ``layer`` coordinate. The band 2 ≤ alpha ≤ 6 is Martin & Mahoney's well-trained range.

    The x-axis is the layer's index in model order; hovering a point names the layer. Up to
    ``max_tick_labels`` layers are also named on the axis — more would only crush the plot.
    """
    require_vars(ds, (var,), "analyze() output")
    names = [str(x) for x in ds.layer.values]
    index = np.arange(len(names))
    hover = "%{customdata}<br>" + var + " %{y:.3f}<extra>%{fullData.name}</extra>"
    fig = go.Figure(go.Scatter(x=index, y=ds[var].values, customdata=names, hovertemplate=hover,
                               mode="markers+lines", name=f"workbench {var}"))
    if reference is not None:
        ref = reference.reindex(layer=ds.layer.values)
        fig.add_trace(go.Scatter(x=index, y=ref.values, customdata=names, hovertemplate=hover, mode="markers",
                                 name=reference_name, marker={"symbol": "x", "size": 9}))
    if var == "alpha":
        fig.add_hrect(y0=2, y1=6, fillcolor="rgba(0,204,150,0.08)", line_width=0)
    xaxis = {"title": "layer (model order; hover for its name)", "range": [-0.5, len(names) - 0.5]}
    if len(names) <= max_tick_labels:
        xaxis.update(title="layer", tickmode="array", tickvals=index.tolist(), ticktext=names)
    fig.update_layout(title=f"{var} per layer", xaxis=xaxis, yaxis={"title": var}, template="plotly_white",
                      hovermode="closest")
    return fig


def spectrum_over_training(ds: xr.Dataset, var: str = "alpha", *, layers: list[str] | None = None,
                           phases: dict | None = None) -> go.Figure:
    """``var`` (step, layer) over training, one line per layer, grokking phases shaded if given
    (``detect_phases`` output or the run's ``phases`` attr)."""
    require_vars(ds, (var,), "the spectrum probe's metrics")
    if "step" not in ds[var].dims:
        raise ValueError(f"ds[{var!r}] must have a 'step' dimension, got {ds[var].dims}")
    da = ds[var]
    fig = go.Figure()
    if "layer" in da.dims:
        for name in layers or [str(x) for x in da.layer.values]:
            y = da.sel(layer=name).values
            keep = np.isfinite(y)
            fig.add_trace(go.Scatter(x=ds.step.values[keep], y=y[keep], mode="lines+markers", name=name))
    else:
        y = da.values
        keep = np.isfinite(y)
        fig.add_trace(go.Scatter(x=ds.step.values[keep], y=y[keep], mode="lines+markers", name=var))
    _shade(fig, ds, phases)
    fig.update_layout(title=f"{var} over training", xaxis={"title": "step"}, yaxis={"title": var},
                      template="plotly_white")
    return fig


def metric_table(ds: xr.Dataset, variables: tuple[str, ...] = ("alpha", "alpha_weighted", "log_norm",
                 "log_spectral_norm", "stable_rank", "effective_rank", "condition_number", "num_spikes")):
    """The per-layer metrics as a pandas DataFrame (index ``layer``), for tables."""
    require_vars(ds, ("alpha",), "analyze() output")
    return ds[[v for v in variables if v in ds and ds[v].dims == ("layer",)]].to_dataframe()
