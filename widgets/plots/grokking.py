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
    "irrep_spectrum",
    "logit_heatmap",
    "neuron_clusters",
    "neuron_concentration",
    "progress_measures",
]

PHASE_COLORS = {"memorization": "rgba(99,110,250,0.12)", "circuit_formation": "rgba(0,204,150,0.12)",
                "cleanup": "rgba(239,85,59,0.12)"}


GROKKED_TEST_ACC = 0.9  # detect_phases' default test_threshold
LABEL_LINE_PX = 17  # phase labels stacked one text line apart (11 px font), whatever the figure's height


def _phases(ds: xr.Dataset, phases: dict | None) -> dict:
    """The phase spans to shade: none unless the run grokked.

    ``phases`` is :func:`~workbench.grokking.phases.detect_phases` output (default: the run's
    attrs). Its ``grokked`` flag decides; reports written before that flag existed are judged from
    the data (``test_acc`` never reaching 0.9 means no grokking, hence no phases to shade).
    """
    if phases is None:
        raw = ds.attrs.get("phases")
        phases = json.loads(raw) if isinstance(raw, str) else raw
    if not phases:
        return {}
    grokked = phases.get("grokked")
    if grokked is None and "test_acc" in ds and ds["test_acc"].notnull().any():
        grokked = float(ds["test_acc"].max()) >= GROKKED_TEST_ACC
    if grokked is False:
        return {}
    return {k: v for k, v in phases.get("phases", phases).items() if k in PHASE_COLORS}


def _shade(fig: go.Figure, ds: xr.Dataset, phases: dict | None, **where) -> None:
    """Shade the phases; their names go once per figure (first subplot), stacked so none overlap."""
    end = int(ds.step.max()) if ds.sizes.get("step") else 0
    spans = [(name, span) for name, span in _phases(ds, phases).items() if span and span[0] is not None]
    for i, (name, span) in enumerate(spans):
        x1 = span[1] if span[1] is not None else end
        fig.add_vrect(x0=span[0], x1=x1, fillcolor=PHASE_COLORS[name], line_width=0, **where)
        fig.add_annotation(x=span[0], y=1, yshift=-LABEL_LINE_PX * i, xref="x", yref="y domain",
                           text=name.replace("_", " "), showarrow=False, xanchor="left", yanchor="top",
                           font={"size": 11, "color": "#444"})


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


def irrep_spectrum(ds: xr.Dataset, title: str | None = None) -> go.Figure:
    """Bar chart of the energy per irreducible representation (``irrep_energy`` over ``irrep``) at
    one step, key irreps highlighted: the group analogue of :func:`fourier_spectrum` (Morwani et al.
    2024; on Z_p the irreps are the Fourier frequencies)."""
    da = ds["irrep_energy"]
    if "step" in da.dims:
        da = da.isel(step=-1)
    key = ds["is_key"].isel(step=-1) if "is_key" in ds and "step" in ds["is_key"].dims else ds.get("is_key")
    is_key = [bool(v) for v in key.values] if key is not None else [False] * da.sizes["irrep"]
    dims = da["irrep_dim"].values if "irrep_dim" in da.coords else [None] * da.sizes["irrep"]
    labels = [f"{i} (d={d})" if d is not None else str(i) for i, d in zip(da.irrep.values, dims)]
    fig = go.Figure(go.Bar(x=labels, y=da.values, marker_color=["#ef553b" if k else "#9aa0a6" for k in is_key],
                           name="irrep_energy"))
    fig.update_layout(title=title or "Embedding energy per irrep (red: key)", xaxis_title="irreducible representation",
                      yaxis_title="energy", template="plotly_white")
    fig.update_xaxes(type="category")
    return fig


def neuron_concentration(ds: xr.Dataset) -> go.Figure:
    """Histogram of the neurons' irrep concentration (share of a neuron's energy in its top irrep;
    1 = single-irrep neuron, as margin maximisation predicts)."""
    da = ds["neuron_concentration"]
    if "step" in da.dims:
        da = da.isel(step=-1)
    fig = go.Figure(go.Histogram(x=da.values, xbins={"start": 0, "end": 1.0001, "size": 0.05}, marker_color="#00cc96"))
    fig.update_layout(title="Neurons by irrep concentration", xaxis_title="share of energy in the top irrep",
                      yaxis_title="neurons", template="plotly_white")
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


PROGRESS_PANELS = (  # (row, col), subplot title, y-axis title, variables
    ((1, 1), "losses", "cross-entropy (log)", ("test_loss", "restricted_loss", "excluded_loss", "train_loss")),
    ((1, 2), "Gini of embedding Fourier norms", "Gini", ("gini",)),
    ((2, 1), "total sum of squared weights", "Σ w²", ("weight_norm",)),
    ((2, 2), "key-frequency (or key-irrep) share", "share of the norm", ("key_freq_fraction", "key_irrep_fraction")),
)


def progress_measures(ds: xr.Dataset, step: int | None = None, phases: dict | None = None) -> go.Figure:
    """Restricted/excluded/test loss, Gini, weight norm and key-frequency share over steps ([1] Fig. 7).

    Every subplot has its own axis titles and its own legend (top right of the subplot).
    """
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t, _, _ in PROGRESS_PANELS],
                        vertical_spacing=0.22, horizontal_spacing=0.1)
    for i, ((r, c), _, y_title, names) in enumerate(PROGRESS_PANELS):
        legend = "legend" if i == 0 else f"legend{i + 1}"
        for var in names:
            if var in ds:
                s = ds[var].dropna("step")
                fig.add_scatter(x=s.step.values, y=s.values, name=var.replace("_", " "), row=r, col=c,
                                legend=legend)
        fig.update_xaxes(title_text="step", row=r, col=c)
        fig.update_yaxes(title_text=y_title, row=r, col=c)
        xd = fig.get_subplot(r, c).xaxis.domain
        yd = fig.get_subplot(r, c).yaxis.domain
        fig.update_layout({legend: {"x": xd[1], "y": yd[1], "xanchor": "right", "yanchor": "top",
                                    "bgcolor": "rgba(255,255,255,0.7)", "font": {"size": 10}}})
    fig.update_yaxes(type="log", row=1, col=1)
    _shade(fig, ds, phases, row="all", col="all")
    if step is not None:
        fig.add_vline(x=step, line_dash="dash", line_color="black", row="all", col="all")
    fig.update_layout(height=680, template="plotly_white", title="Progress measures")
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
