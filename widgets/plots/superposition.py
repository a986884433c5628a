"""Superposition figures (Elhage et al. 2022, "Toy Models of Superposition"): pure Dataset → Figure.

Inputs are a toy-model Dataset (``W`` (instance, hidden, feature), ``b``, coord ``sparsity``)
merged with :func:`workbench.superposition.measures.analyze` (``WtW``, ``dimensionality``,
``dims_per_feature``, ``feature_norm``), or a :func:`~workbench.superposition.measures.phase_diagram`
Dataset. Nothing here computes beyond reshaping.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from widgets.plots._checks import require_vars

__all__ = [
    "PHASE_COLORS",
    "dimensionality_scatter",
    "feature_directions",
    "phase_diagram_plot",
    "superposition_grid",
]

PHASE_COLORS = {"not_represented": "#d9d9d9", "dedicated": "#4c78a8", "superposition": "#e45756"}
# fractional dimensionalities of uniform polytopes, drawn as guide lines (paper's fig.)
GEOMETRY_LINES = {"1": 1.0, "3/4 tetrahedron": 0.75, "2/3 triangle": 2 / 3, "1/2 antipodal": 0.5,
                  "2/5 pentagon": 0.4, "3/8 sq. antiprism": 0.375}


def _label(ds: xr.Dataset, i: int) -> str:
    return f"S={float(ds['sparsity'].values[i]):.3g}" if "sparsity" in ds.coords else f"instance {i}"


def superposition_grid(ds: xr.Dataset, *, max_instances: int = 8, title: str | None = None) -> go.Figure:
    """WᵀW heatmaps (top) and biases b (bottom), one column per instance (paper's first figures).

    ``ds`` needs ``WtW`` (instance, feature, feature2) and ``b`` (instance, feature).
    """
    require_vars(ds, ("WtW", "b"), "merge the output of workbench.superposition.measures.analyze(ds)")
    n = min(int(ds.sizes["instance"]), max_instances)
    fig = make_subplots(rows=2, cols=n, row_heights=[0.7, 0.3], vertical_spacing=0.08,
                        horizontal_spacing=0.02, subplot_titles=[_label(ds, i) for i in range(n)])
    F = int(ds.sizes["feature"])
    for i in range(n):
        fig.add_trace(go.Heatmap(z=ds["WtW"].values[i], zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                                 showscale=i == n - 1, name=f"WtW {_label(ds, i)}",
                                 hovertemplate="i=%{y} j=%{x}<br>W_i·W_j=%{z:.3f}<extra></extra>"),
                      row=1, col=i + 1)
        b = ds["b"].values[i]
        fig.add_trace(go.Bar(x=np.arange(F), y=b, marker_color=np.where(b >= 0, "#4c78a8", "#e45756"),
                             name=f"b {_label(ds, i)}", showlegend=False), row=2, col=i + 1)
        fig.update_yaxes(autorange="reversed", showticklabels=i == 0, row=1, col=i + 1, scaleanchor=f"x{i + 1}")
        fig.update_xaxes(showticklabels=False, row=1, col=i + 1)
    fig.update_layout(title=title or "WᵀW (top) and bias b (bottom) across sparsity", height=420 + 20 * (F > 10),
                      margin={"l": 40, "r": 20, "t": 70, "b": 30})
    return fig


def feature_directions(ds: xr.Dataset, *, max_instances: int = 8, title: str | None = None) -> go.Figure:
    """For m = 2: each feature's column W_i as a line from the origin, one panel per instance."""
    require_vars(ds, ("W",), "pass a toy-model dataset")
    if int(ds.sizes["hidden"]) != 2:
        raise ValueError(f"feature_directions needs n_hidden = 2, got {int(ds.sizes['hidden'])}")
    n = min(int(ds.sizes["instance"]), max_instances)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[_label(ds, i) for i in range(n)],
                        horizontal_spacing=0.03)
    W = ds["W"].transpose("instance", "hidden", "feature").values
    imp = ds["importance"].values if "importance" in ds else np.ones((W.shape[0], W.shape[2]))
    for i in range(n):
        xs, ys = [], []
        for f in range(W.shape[2]):
            xs += [0.0, float(W[i, 0, f]), None]
            ys += [0.0, float(W[i, 1, f]), None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#555", "width": 1.5},
                                 name=f"directions {_label(ds, i)}", showlegend=False), row=1, col=i + 1)
        fig.add_trace(go.Scatter(x=W[i, 0], y=W[i, 1], mode="markers",
                                 marker={"size": 7, "color": imp[i], "colorscale": "Viridis", "cmin": 0, "cmax": 1},
                                 text=[f"feature {f}" for f in range(W.shape[2])], name=f"features {_label(ds, i)}",
                                 hovertemplate="%{text}<br>W=(%{x:.2f}, %{y:.2f})<extra></extra>",
                                 showlegend=False), row=1, col=i + 1)
        fig.update_xaxes(range=[-1.5, 1.5], showticklabels=False, row=1, col=i + 1)
        fig.update_yaxes(range=[-1.5, 1.5], showticklabels=False, scaleanchor=f"x{i + 1}", row=1, col=i + 1)
    fig.update_layout(title=title or "Feature directions W_i in the 2-D hidden space (colour = importance)",
                      height=300, margin={"l": 20, "r": 20, "t": 70, "b": 20})
    return fig


def dimensionality_scatter(ds: xr.Dataset, *, norm_threshold: float = 0.5, title: str | None = None) -> go.Figure:
    """Feature dimensionality D_i of each represented feature vs 1/(1−S), with the dims-per-feature
    line and the fractional-geometry guide lines (paper's "Feature Dimensionality" figure)."""
    require_vars(ds, ("dimensionality", "dims_per_feature", "feature_norm"),
             "merge the output of workbench.superposition.measures.analyze(ds)")
    if "sparsity" not in ds.coords:
        raise ValueError("dimensionality_scatter needs a 'sparsity' coordinate on instance")
    inv = 1.0 / (1.0 - ds["sparsity"].values)                                  # (I,)
    D = ds["dimensionality"].transpose("instance", "feature").values
    rep = ds["feature_norm"].transpose("instance", "feature").values >= norm_threshold
    ii, ff = np.nonzero(rep)
    rng = np.random.default_rng(0)
    jitter = np.exp(rng.normal(0, 0.04, len(ii)))                              # spread overlapping dots
    fig = go.Figure()
    for name, y in GEOMETRY_LINES.items():
        fig.add_hline(y=y, line={"color": "#bbb", "dash": "dot", "width": 1}, annotation_text=name,
                      annotation_position="right")
    fig.add_trace(go.Scatter(x=inv[ii] * jitter, y=D[ii, ff], mode="markers", name="D_i (represented features)",
                             marker={"size": 5, "color": "#4c78a8", "opacity": 0.6},
                             text=[f"instance {i}, feature {f}" for i, f in zip(ii, ff)],
                             hovertemplate="%{text}<br>1/(1-S)=%{x:.3g}<br>D=%{y:.3f}<extra></extra>"))
    order = np.argsort(inv)
    fig.add_trace(go.Scatter(x=inv[order], y=ds["dims_per_feature"].values[order], mode="lines",
                             name="dims per feature m/‖W‖²_F", line={"color": "black"}))
    fig.update_layout(title=title or "Feature dimensionality vs sparsity", xaxis_type="log",
                      xaxis_title="1/(1−S)", yaxis_title="dimensions", yaxis_range=[0, 1.1], height=420,
                      margin={"l": 50, "r": 130, "t": 60, "b": 50})
    return fig


def phase_diagram_plot(pd: xr.Dataset, *, title: str | None = None) -> go.Figure:
    """Phase of the last feature per (density, importance ratio) cell; hover shows the cell's W, b
    and loss (paper's "Phase Change" figure). ``pd`` is a ``phase_diagram`` Dataset."""
    require_vars(pd, ("phase", "W", "b"), "pass the output of workbench.superposition.measures.phase_diagram")
    phases = list(PHASE_COLORS)
    phase = pd["phase"].transpose("importance_ratio", "density").values.astype(str)
    z = np.vectorize(phases.index)(phase)
    W = pd["W"].transpose("importance_ratio", "density", "hidden", "feature").values
    b = pd["b"].transpose("importance_ratio", "density", "feature").values
    loss = pd["loss"].transpose("importance_ratio", "density").values if "loss" in pd else np.full(z.shape, np.nan)
    fmt = lambda a: "[" + ", ".join(f"{v:+.2f}" for v in np.ravel(a)) + "]"
    text = [[f"{phase[r, d]}<br>W={fmt(W[r, d])}<br>b={fmt(b[r, d])}<br>loss={loss[r, d]:.4g}"
             for d in range(z.shape[1])] for r in range(z.shape[0])]
    k = len(phases)
    scale = []
    for i, p in enumerate(phases):                                             # discrete colour bands
        scale += [[i / k, PHASE_COLORS[p]], [(i + 1) / k, PHASE_COLORS[p]]]
    fig = go.Figure(go.Heatmap(
        x=pd["density"].values, y=pd["importance_ratio"].values, z=z, zmin=-0.5, zmax=k - 0.5,
        colorscale=scale, text=text, name="phase",
        hovertemplate="density=%{x:.3g}, importance ratio=%{y:.3g}<br>%{text}<extra></extra>",
        colorbar={"tickvals": list(range(k)), "ticktext": phases}))
    fig.update_layout(title=title or f"Phase of feature {int(pd.sizes['feature'])} "
                      f"(n={int(pd.sizes['feature'])}, m={int(pd.sizes['hidden'])})",
                      xaxis={"type": "log", "title": "feature density 1−S", "autorange": "reversed"},
                      yaxis={"type": "log", "title": "relative importance of the last feature"},
                      height=450, margin={"l": 60, "r": 20, "t": 60, "b": 50})
    return fig
