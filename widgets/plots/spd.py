"""SPD figures (Bushnaq et al. 2025, "Stochastic Parameter Decomposition"): pure Dataset → Figure.

Inputs are the Dataset of :func:`workbench.superposition.spd` with, where named, the outputs of
its measures (:func:`~workbench.superposition.column_match`,
:func:`~workbench.superposition.onehot_importances`). Nothing here computes beyond reshaping.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from widgets.plots._checks import require_vars

__all__ = ["spd_columns", "spd_importances"]


def spd_columns(ds: xr.Dataset, match: xr.Dataset, *, instance: int = 0, title: str | None = None) -> go.Figure:
    """Target columns W_{:,j} beside the best-matching subcomponent's column U_{:,c} V_{c,j}
    (the pairs behind MMCS/ML2R): two heatmaps (hidden × feature) on one colour scale."""
    require_vars(ds, ("W", "U", "V"), "workbench.superposition.spd()")
    require_vars(match, ("best_component", "cosine", "l2_ratio"), "workbench.superposition.column_match()")
    H, F = ds.sizes["hidden"], ds.sizes["feature"]
    W = ds["W"].isel(instance=instance).transpose("hidden", "feature").values
    best = match["best_component"].isel(instance=instance).values
    U = ds["U"].sel(layer="W_in").isel(instance=instance).transpose("component", "out").values[:, :H]
    V = ds["V"].sel(layer="W_in").isel(instance=instance).transpose("component", "in").values[:, :F]
    recovered = np.stack([U[c] * V[c, j] for j, c in enumerate(best)], axis=1)     # (hidden, feature)
    cos = match["cosine"].isel(instance=instance).values
    ratio = match["l2_ratio"].isel(instance=instance).values
    zmax = float(np.abs(W).max()) or 1.0
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=["target W (hidden × feature)", "best subcomponent per feature"])
    text = [[f"component {c}<br>cos {cs:.3f}, ‖·‖ ratio {r:.3f}" for c, cs, r in zip(best, cos, ratio)]] * H
    for col, (z, hover) in enumerate(((W, None), (recovered, text)), start=1):
        fig.add_trace(go.Heatmap(z=z, zmin=-zmax, zmax=zmax, colorscale="RdBu", reversescale=True,
                                 showscale=col == 2, text=hover, name="W" if col == 1 else "recovered",
                                 hovertemplate="hidden %{y}, feature %{x}: %{z:.3f}"
                                 + ("<br>%{text}" if hover else "") + "<extra></extra>"), row=1, col=col)
        fig.update_xaxes(title_text="feature", row=1, col=col)
    fig.update_yaxes(title_text="hidden", autorange="reversed", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_layout(title=title or f"SPD: target columns vs recovered subcomponents "
                                     f"(MMCS {cos.mean():.3f}, ML2R {ratio.mean():.3f})",
                      height=320, margin={"l": 50, "r": 20, "t": 70, "b": 40})
    return fig


def spd_importances(importance: xr.DataArray, *, instance: int = 0, title: str | None = None) -> go.Figure:
    """Causal importances on one-hot inputs, one heatmap (feature × component) per layer, the
    components ordered by the feature they serve and components never important dropped (the
    paper's permuted CI plots: a permutation is a perfect decomposition)."""
    if not isinstance(importance, xr.DataArray) or set(importance.dims) != {"instance", "layer", "feature", "component"}:
        raise ValueError("importance must be the DataArray of workbench.superposition.onehot_importances()")
    g = importance.isel(instance=instance).transpose("layer", "feature", "component")
    layers = [str(v) for v in g["layer"].values]
    fig = make_subplots(rows=1, cols=len(layers), subplot_titles=layers, horizontal_spacing=0.06)
    for col, layer in enumerate(layers, start=1):
        m = g.sel(layer=layer).values
        keep = np.flatnonzero(m.max(0) > 0.05)
        order = keep[np.lexsort((-m[:, keep].max(0), m[:, keep].argmax(0)))] if keep.size else keep
        fig.add_trace(go.Heatmap(z=m[:, order], x=[str(c) for c in order], zmin=0, zmax=1, colorscale="Blues",
                                 showscale=col == len(layers), name=layer,
                                 hovertemplate="feature %{y}, component %{x}: %{z:.3f}<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(title_text="component", type="category", row=1, col=col)
        fig.update_yaxes(autorange="reversed", title_text="feature" if col == 1 else None, row=1, col=col)
    fig.update_layout(title=title or "Causal importance on one-hot inputs (components with any importance)",
                      height=320, margin={"l": 50, "r": 20, "t": 70, "b": 40})
    return fig
