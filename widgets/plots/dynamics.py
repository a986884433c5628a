"""Training-dynamics figures of the weight-spectrum lens: ΔW ranks, the gradual-rank toy, κ, compressibility.

Inputs: :func:`workbench.spectrum.delta_spectrum` (step, layer, sv), :func:`gradual_rank_toy`
results concatenated over ``alpha``, :func:`kappa_select` (layer), :func:`compressibility`
(step, codec), and :func:`workbench.koopman.embedded_cmd_train` curves concatenated over ``training``. Grokking phases are shaded when given (``detect_phases`` output or the run's attrs).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from widgets.plots._checks import require_vars

from .grokking import _shade

__all__ = ["compressibility_curves", "delta_rank_curves", "embedded_cmd_curves", "gradual_rank_figure", "kappa_bars"]


def delta_rank_curves(ds: xr.Dataset, layer: str | None = None, *, top: int = 12, phases: dict | None = None,
                      title: str = "Spectrum of ΔW = W_t − W_0") -> go.Figure:
    """Stable and numerical rank of ΔW per layer over steps (left), and the ``top`` normalised singular
    values σ_i/σ_1 of one ``layer`` (right; default the first) on a log scale. Boix-Adsera et al. 2023."""
    require_vars(ds, ("sv_norm", "stable_rank", "numerical_rank"), "delta_spectrum()")
    layer = str(ds.layer.values[0]) if layer is None else layer
    fig = make_subplots(rows=1, cols=2, subplot_titles=("rank of ΔW (solid: stable, dotted: numerical)",
                                                        f"σ_i / σ_1 of ΔW, {layer}"))
    steps = ds.step.values
    for k, name in enumerate(ds.layer.values):
        color = f"hsl({(67 * k) % 360}, 60%, 45%)"
        fig.add_trace(go.Scatter(x=steps, y=ds.stable_rank.sel(layer=name).values, mode="lines", name=str(name),
                                 legendgroup=str(name), line={"color": color}), 1, 1)
        fig.add_trace(go.Scatter(x=steps, y=ds.numerical_rank.sel(layer=name).values, mode="lines",
                                 name=f"{name} (numerical)", legendgroup=str(name), showlegend=False,
                                 line={"color": color, "dash": "dot"}), 1, 1)
    sv = ds.sv_norm.sel(layer=layer)
    for i in range(min(top, ds.sizes["sv"])):
        y = sv.isel(sv=i).values
        if np.isfinite(y).any():
            fig.add_trace(go.Scatter(x=steps, y=y, mode="lines", name=f"σ_{i + 1}/σ_1", showlegend=False,
                                     line={"width": 1, "color": f"rgba(31,119,180,{1 - 0.7 * i / max(top, 1)})"}),
                          1, 2)
    _shade(fig, ds, phases, row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=1, title_text="rank")
    fig.update_yaxes(type="log", row=1, col=2, title_text="σ_i / σ_1")
    fig.update_xaxes(title_text="step")
    fig.update_layout(title=title, template="plotly_white")
    return fig


def gradual_rank_figure(ds: xr.Dataset, *, title: str = "Gradual rank increase: diagonal attention toy"
                        ) -> go.Figure:
    """Loss (top) and numerical rank of ΔW per layer (bottom) against t / log(1/α), one colour per α.

    ``ds``: :func:`workbench.spectrum.gradual_rank_toy` results concatenated along a new dim
    ``alpha`` (``xr.concat(runs, dim="alpha")``); stages that line up across α are the paper's
    prediction (Boix-Adsera et al. 2023, Thm. 1)."""
    require_vars(ds, ("loss", "rescaled_time", "numerical_rank"), "gradual_rank_toy() concatenated over alpha")
    if "alpha" not in ds.dims:
        raise ValueError("ds needs an 'alpha' dim: xr.concat([gradual_rank_toy(a) for a in alphas], dim='alpha')")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("training loss", "numerical rank of ΔW"))
    dashes = ("solid", "dot", "dash", "dashdot")
    for k, alpha in enumerate(ds.alpha.values):
        run = ds.sel(alpha=alpha).dropna("step", subset=["loss"])
        color = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")[k % 4]
        x = run.rescaled_time.values
        fig.add_trace(go.Scatter(x=x, y=run.loss.values, mode="lines", name=f"α = {alpha:g}",
                                 line={"color": color}), 1, 1)
        for j, layer in enumerate(run.layer.values):
            fig.add_trace(go.Scatter(x=x, y=run.numerical_rank.sel(layer=layer).values, mode="lines",
                                     name=f"{layer}, α = {alpha:g}", showlegend=k == 0 or j == 0,
                                     line={"color": color, "dash": dashes[j % 4], "shape": "hv"}), 2, 1)
    fig.update_yaxes(type="log", row=1, col=1, title_text="loss")
    fig.update_yaxes(title_text="rank", row=2, col=1, dtick=1)
    fig.update_xaxes(title_text="t / log(1/α)   (t = lr · step)", row=2, col=1)
    fig.update_layout(title=title, template="plotly_white", height=560)
    return fig


def kappa_bars(ds: xr.Dataset, *, title: str = "Condition number κ per module (KappaTune)") -> go.Figure:
    """κ = σ_0/(σ_last + 1e-8) per module, lowest first, the selected ones highlighted (Ludwig 2025)."""
    require_vars(ds, ("kappa", "selected"), "kappa_select()")
    colors = np.where(ds.selected.values, "#2ca02c", "#bbbbbb")
    fig = go.Figure(go.Bar(x=[str(x) for x in ds.layer.values], y=ds.kappa.values, marker_color=colors,
                           text=["selected" if s else "" for s in ds.selected.values], textposition="outside"))
    fig.update_layout(title=title, xaxis_title="module", yaxis={"title": "κ", "type": "log"},
                      template="plotly_white")
    return fig


def compressibility_curves(ds: xr.Dataset, *, phases: dict | None = None,
                           title: str = "Compressibility of the weights") -> go.Figure:
    """Compression ratio (raw / compressed bytes) per codec over steps, phases shaded (MoMos)."""
    require_vars(ds, ("ratio",), "compressibility() over a run")
    if "step" not in ds.ratio.dims:
        raise ValueError("ds['ratio'] must have a 'step' dim: compressibility() of a run or {step: state}")
    fig = go.Figure()
    for codec in ds.codec.values:
        fig.add_trace(go.Scatter(x=ds.step.values, y=ds.ratio.sel(codec=codec).values, mode="lines+markers",
                                 name=str(codec)))
    _shade(fig, ds, phases)
    fig.update_layout(title=title, xaxis_title="step",
                      yaxis_title=f"compression ratio ({ds.attrs.get('payload', 'float32')} payload)",
                      template="plotly_white")
    return fig


def embedded_cmd_curves(ds: xr.Dataset, *, title: str = "Training through CMD modes (embedded CMD)") -> go.Figure:
    """Test accuracy (top) and the share of embedded parameters (bottom) over steps, one line per
    training. ``ds``: :func:`workbench.koopman.embedded_cmd_train` results concatenated along a dim
    ``training`` (e.g. ``["plain", "embedded 10%"]``). Brokman et al. 2024."""
    require_vars(ds, ("test_acc", "embedded_fraction"), "embedded_cmd_train() concatenated over training")
    if "training" not in ds.dims:
        raise ValueError("ds needs a 'training' dim: xr.concat([plain, embedded], dim='training')")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.7, 0.3],
                        subplot_titles=("test accuracy", "share of parameters embedded"))
    for name in ds.training.values:
        run = ds.sel(training=name).dropna("step", subset=["test_acc"])
        fig.add_trace(go.Scatter(x=run.step.values, y=run.test_acc.values, mode="lines", name=str(name),
                                 legendgroup=str(name)), 1, 1)
        fig.add_trace(go.Scatter(x=run.step.values, y=run.embedded_fraction.values, mode="lines", name=str(name),
                                 legendgroup=str(name), showlegend=False), 2, 1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(title=title, template="plotly_white", height=480)
    return fig
