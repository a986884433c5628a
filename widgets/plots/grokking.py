"""Grokking figures (Nanda et al. 2023; Lee et al. 2024): xr.Dataset → plotly Figure, no compute.

Inputs are a run's ``metrics()`` (``step`` dim) or one step of it (``ds.sel(step=s)``).
"""
from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

__all__ = [
    "fourier_spectrum",
    "grokfast_comparison",
    "grokking_curves",
    "logit_heatmap",
    "neuron_clusters",
    "progress_measures",
]

PHASE_COLORS = {"memorization": "rgba(99,110,250,0.12)", "circuit_formation": "rgba(0,204,150,0.12)",
                "cleanup": "rgba(239,85,59,0.12)"}


def _phases(ds: xr.Dataset, phases: dict | None) -> dict:
    if phases is None:
        raw = ds.attrs.get("phases")
        phases = json.loads(raw) if isinstance(raw, str) else raw
    return (phases or {}).get("phases", phases or {}) if phases else {}


def _shade(fig: go.Figure, ds: xr.Dataset, phases: dict | None, **where) -> None:
    end = int(ds.step.max()) if ds.sizes.get("step") else 0
    for name, span in _phases(ds, phases).items():
        if span and span[0] is not None:
            fig.add_vrect(x0=span[0], x1=span[1] if span[1] is not None else end, fillcolor=PHASE_COLORS.get(name),
                          line_width=0, annotation_text=name.replace("_", " "), annotation_position="top left",
                          **where)


def grokking_curves(ds: xr.Dataset, phases: dict | None = None, title: str = "Train / test loss") -> go.Figure:
    """Train and test loss (log scale) over steps with the three phases shaded ([1] Fig. 1/7).

    ``phases``: :func:`workbench.grokking.phases.detect_phases` output; default the run's attrs.
    """
    fig = go.Figure()
    for var, color in (("train_loss", "#636efa"), ("test_loss", "#ef553b")):
        if var in ds:
            s = ds[var].dropna("step")
            fig.add_scatter(x=s.step.values, y=s.values, name=var.replace("_", " "), line_color=color)
    _shade(fig, ds, phases)
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="cross-entropy", yaxis_type="log",
                      template="plotly_white")
    return fig


def fourier_spectrum(ds: xr.Dataset, var: str = "embed_norm", key_freqs: list[int] | None = None,
                     title: str | None = None) -> go.Figure:
    """Bar chart of a per-frequency norm (``embed_norm`` or ``logit_norm``) at one step; key bars highlighted."""
    da = ds[var]
    if "step" in da.dims:
        da = da.isel(step=-1)
    if key_freqs is None and "is_key" in ds:
        k = ds["is_key"].isel(step=-1) if "step" in ds["is_key"].dims else ds["is_key"]
        key_freqs = [int(f) for f, v in zip(k.freq.values, k.values) if v]
    key = set(key_freqs or [])
    colors = ["#ef553b" if int(f) in key else "#9aa0a6" for f in da.freq.values]
    fig = go.Figure(go.Bar(x=da.freq.values, y=da.values, marker_color=colors, name=var))
    fig.update_layout(title=title or f"{var} per frequency (red: key)", xaxis_title="frequency k (w = 2πk/p)",
                      yaxis_title="norm", template="plotly_white")
    return fig


def neuron_clusters(ds: xr.Dataset) -> go.Figure:
    """Number of MLP neurons per frequency cluster (``neuron_freq``; 0 = unclustered) ([1] Fig. 5)."""
    da = ds["neuron_freq"]
    if "step" in da.dims:
        da = da.isel(step=-1)
    vals = np.asarray(da.values, dtype=int)
    freqs, counts = np.unique(vals, return_counts=True)
    labels = ["none" if f == 0 else str(f) for f in freqs]
    fig = go.Figure(go.Bar(x=labels, y=counts, marker_color=["#9aa0a6" if f == 0 else "#00cc96" for f in freqs]))
    fig.update_layout(title="Neurons per frequency cluster", xaxis_title="frequency (none: < threshold)",
                      yaxis_title="neurons", xaxis_type="category", template="plotly_white")
    return fig


def logit_heatmap(ds: xr.Dataset) -> go.Figure:
    """Heatmap of the logits' 2-D Fourier norms over (freq_a, freq_b) ([1] Fig. 4)."""
    da = ds["logit_fourier_2d"]
    if "step" in da.dims:
        da = da.isel(step=-1)
    fig = go.Figure(go.Heatmap(z=da.values, x=da.freq_b.values, y=da.freq_a.values, colorscale="Viridis",
                               colorbar_title="norm"))
    fig.update_layout(title="Logits in the 2-D Fourier basis", xaxis_title="frequency of b",
                      yaxis_title="frequency of a", template="plotly_white")
    return fig


def progress_measures(ds: xr.Dataset, step: int | None = None, phases: dict | None = None) -> go.Figure:
    """Restricted/excluded/test loss, Gini, weight norm and key-frequency share over steps ([1] Fig. 7)."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=("losses", "Gini of embedding Fourier norms",
                                                       "total sum of squared weights", "key-frequency share"))
    panels = [((1, 1), ("test_loss", "restricted_loss", "excluded_loss", "train_loss")), ((1, 2), ("gini",)),
              ((2, 1), ("weight_norm",)), ((2, 2), ("key_freq_fraction",))]
    for (r, c), names in panels:
        for var in names:
            if var in ds:
                s = ds[var].dropna("step")
                fig.add_scatter(x=s.step.values, y=s.values, name=var.replace("_", " "), row=r, col=c)
    fig.update_yaxes(type="log", row=1, col=1)
    _shade(fig, ds, phases, row="all", col="all")
    if step is not None:
        fig.add_vline(x=step, line_dash="dash", line_color="black", row="all", col="all")
    fig.update_layout(height=600, template="plotly_white", title="Progress measures")
    return fig


def grokfast_comparison(runs: dict[str, xr.Dataset], var: str = "test_acc") -> go.Figure:
    """``var`` over steps for several runs (e.g. ``{"AdamW": m1, "Grokfast-EMA": m2}``)."""
    fig = go.Figure()
    for label, ds in runs.items():
        s = ds[var].dropna("step")
        fig.add_scatter(x=s.step.values, y=s.values, name=label)
    fig.update_layout(title=f"{var.replace('_', ' ')}: Grokfast vs baseline", xaxis_title="step",
                      yaxis_title=var, template="plotly_white")
    return fig
