"""Koopman figures: estimator / trajectory-spectrum Datasets → plotly Figures (no compute beyond reshaping).

Inputs: ``DMD(...).fit(X).to_dataset()`` (dim ``eig``), ``trajectory_spectrum(...)`` (dims
``window``, ``eig``), ``ResDMD.pseudospectrum(...)`` (dims ``imag``, ``real``),
``distance_matrix(...)`` (dims ``run_a``, ``run_b``), ``forecast(...)`` (dim ``step``), ``cmd(...)``
(dims ``param``, ``mode``, ``step``) and ``piecewise_dmd(...)`` (dims ``n_windows``, ``window``, ``step``).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from widgets.plots._checks import require_vars

__all__ = [
    "koopman_cmd",
    "koopman_distance_matrix",
    "koopman_eigenvalues",
    "koopman_forecast",
    "koopman_modes",
    "koopman_piecewise",
    "koopman_pseudospectrum",
    "koopman_window_spectra",
]

_CIRCLE = np.exp(1j * np.linspace(0, 2 * np.pi, 361))


def _unit_circle(fig: go.Figure, **kw) -> None:
    fig.add_trace(go.Scatter(x=_CIRCLE.real, y=_CIRCLE.imag, mode="lines", name="unit circle",
                             line={"color": "grey", "dash": "dot", "width": 1}, hoverinfo="skip"), **kw)


def _square(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title="Re λ", yaxis_title="Im λ", template="plotly_white",
                      yaxis={"scaleanchor": "x", "scaleratio": 1}, legend={"orientation": "h", "y": -0.15})
    return fig


def koopman_eigenvalues(ds: xr.Dataset, *, reference=None, title: str = "Koopman eigenvalues",
                        log_residual: bool = True) -> go.Figure:
    """Eigenvalues on the complex plane with the unit circle, coloured by ResDMD residual if present.

    ``ds``: an estimator's ``to_dataset()`` or one window of ``trajectory_spectrum``; a Dataset with a
    ``window`` dim is pooled over windows. ``reference``: optional true eigenvalues (open circles).
    """
    require_vars(ds, ("eig_real", "eig_imag"), "DMD.to_dataset() or trajectory_spectrum()")
    re, im = ds["eig_real"].values.ravel(), ds["eig_imag"].values.ravel()
    ok = np.isfinite(re) & np.isfinite(im)
    fig = go.Figure()
    _unit_circle(fig)
    marker: dict = {"size": 9}
    hover = "λ = %{x:.4f} %{y:+.4f}i"
    if "residual" in ds:
        res = ds["residual"].values.ravel()[ok]
        color = np.log10(np.maximum(res, 1e-16)) if log_residual else res
        marker.update(color=color, colorscale="Viridis_r", showscale=True,
                      colorbar={"title": "log₁₀ residual" if log_residual else "residual"})
        hover += "<br>residual %{customdata:.2e}"
    fig.add_trace(go.Scatter(x=re[ok], y=im[ok], mode="markers", name="estimated", marker=marker,
                             customdata=ds["residual"].values.ravel()[ok] if "residual" in ds else None,
                             hovertemplate=hover + "<extra></extra>"))
    if reference is not None:
        ref = np.asarray(reference, dtype=complex).ravel()
        fig.add_trace(go.Scatter(x=ref.real, y=ref.imag, mode="markers", name="true",
                                 marker={"size": 15, "symbol": "circle-open", "color": "crimson",
                                         "line": {"width": 2}}))
    return _square(fig, title)


def koopman_pseudospectrum(ps: xr.DataArray, ds: xr.Dataset | None = None, *, levels=(1e-3, 1e-2, 1e-1, 0.3),
                           title: str = "ResDMD pseudospectrum") -> go.Figure:
    """Contours of log₁₀ τ(z) (ResDMD, Colbrook & Townsend 2023 Alg. 2) with eigenvalues and unit circle."""
    if not isinstance(ps, xr.DataArray) or set(ps.dims) != {"imag", "real"}:
        raise ValueError("ps must be a DataArray with dims ('imag', 'real') from ResDMD.pseudospectrum")
    ps = ps.transpose("imag", "real")
    lv = np.log10(np.asarray(levels, dtype=float))
    fig = go.Figure(go.Contour(
        x=ps["real"].values, y=ps["imag"].values, z=np.log10(np.maximum(ps.values, 1e-16)),
        colorscale="Blues_r", contours={"start": lv.min(), "end": lv.max(),
                                        "size": (lv.max() - lv.min()) / max(len(lv) - 1, 1), "showlabels": True},
        colorbar={"title": "log₁₀ τ(z)"}, name="τ(z)"))
    _unit_circle(fig)
    if ds is not None:
        require_vars(ds, ("eig_real", "eig_imag"), "eigenvalues to overlay")
        fig.add_trace(go.Scatter(x=ds["eig_real"].values.ravel(), y=ds["eig_imag"].values.ravel(), mode="markers",
                                 name="EDMD eigenvalues", marker={"color": "red", "size": 6}))
    return _square(fig, title)


def koopman_window_spectra(ds: xr.Dataset, *, title: str = "Koopman spectrum over training") -> go.Figure:
    """Per-window spectra: |λ| and arg λ against the window's last step, coloured by residual."""
    require_vars(ds, ("eig_real", "eig_imag", "step_end"), "trajectory_spectrum()")
    lam = ds["eig_real"].values + 1j * ds["eig_imag"].values  # (window, eig)
    steps = np.broadcast_to(ds["step_end"].values[:, None], lam.shape)
    ok = np.isfinite(lam)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=("|λ| (1 = neutral)", "arg λ (rad)"))
    marker: dict = {"size": 6}
    if "residual" in ds:
        marker.update(color=np.log10(np.maximum(ds["residual"].values[ok], 1e-16)), colorscale="Viridis_r",
                      showscale=True, colorbar={"title": "log₁₀ res"})
    fig.add_trace(go.Scatter(x=steps[ok], y=np.abs(lam[ok]), mode="markers", marker=marker, name="|λ|"), 1, 1)
    fig.add_trace(go.Scatter(x=steps[ok], y=np.angle(lam[ok]), mode="markers", marker={**marker, "showscale": False},
                             name="arg λ"), 2, 1)
    fig.add_hline(y=1.0, line={"dash": "dot", "color": "grey"}, row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", showlegend=False, height=520)
    fig.update_xaxes(title_text="training step (window end)", row=2, col=1)
    return fig


def koopman_distance_matrix(D: xr.DataArray, *, title: str = "Koopman distance between runs") -> go.Figure:
    """Heatmap of :func:`distance_matrix` (Wasserstein distance between eigenvalue sets)."""
    if not isinstance(D, xr.DataArray) or D.dims != ("run_a", "run_b"):
        raise ValueError("D must be a DataArray with dims ('run_a', 'run_b') from distance_matrix")
    labels_a, labels_b = [str(v) for v in D["run_a"].values], [str(v) for v in D["run_b"].values]
    fig = go.Figure(go.Heatmap(z=D.values, x=labels_b, y=labels_a, colorscale="Magma_r",
                               colorbar={"title": "W₁"}, text=np.round(D.values, 3), texttemplate="%{text}"))
    fig.update_layout(title=title, template="plotly_white", yaxis={"autorange": "reversed"})
    return fig


def koopman_forecast(ds: xr.Dataset, loss: str = "train_loss", *, title: str = "Koopman weight forecast") -> go.Figure:
    """Loss of forecast vs actually trained weights over the horizon, with the loss at ``from_step``."""
    names = (f"{loss}_predicted", f"{loss}_actual")
    require_vars(ds, names, "forecast()")
    fig = make_subplots(rows=1, cols=2, subplot_titles=(loss, "relative weight error"))
    fig.add_trace(go.Scatter(x=ds.step.values, y=ds[names[0]].values, name="Koopman forecast", mode="lines+markers"), 1, 1)
    fig.add_trace(go.Scatter(x=ds.step.values, y=ds[names[1]].values, name="trained", mode="lines+markers"), 1, 1)
    if f"{loss}_start" in ds:
        fig.add_hline(y=float(ds[f"{loss}_start"]), line={"dash": "dot"}, annotation_text="at from_step", row=1, col=1)
    fig.add_trace(go.Scatter(x=ds.step.values, y=ds["relative_error"].values, name="‖θ̂−θ‖/‖θ−θ₀‖",
                             mode="lines+markers"), 1, 2)
    fig.update_layout(title=title, template="plotly_white")
    return fig


def koopman_modes(ds: xr.Dataset, n: int = 4, *, title: str = "Koopman modes (|φ|)",
                  x_title: str = "feature") -> go.Figure:
    """Magnitude of the ``n`` largest-amplitude modes over features (from ``to_dataset()``);
    ``x_title`` says what a feature is (a parameter, or a coordinate of a random sketch)."""
    require_vars(ds, ("mode_real", "mode_imag", "amplitude"), "DMD.to_dataset()")
    order = np.argsort(-ds["amplitude"].values)[:n]
    fig = go.Figure()
    for k in order:
        mag = np.hypot(ds["mode_real"].values[k], ds["mode_imag"].values[k])
        lam = complex(ds["eig_real"].values[k], ds["eig_imag"].values[k])
        fig.add_trace(go.Scatter(y=mag, mode="lines", name=f"λ={lam.real:.3f}{lam.imag:+.3f}i"))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="|mode|", template="plotly_white")
    return fig


def koopman_cmd(ds: xr.Dataset, *, title: str = "Correlated modes of the training trajectory") -> go.Figure:
    """CMD (Brokman et al. 2024): each mode's reference trajectory, and the relative error over steps.

    ``ds`` from :func:`workbench.koopman.cmd`. With online CMD a dotted line marks the end of the
    warm-up: the error after it is each checkpoint's error at arrival.
    """
    require_vars(ds, ("reference", "relative_error", "mode_size"), "cmd()")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("reference trajectory of each mode", "relative error ‖w − ŵ‖/‖w‖"))
    steps = ds["step"].values
    for m in ds["mode"].values:
        fig.add_trace(go.Scatter(x=steps, y=ds["reference"].sel(mode=m).values, mode="lines",
                                 name=f"mode {m} ({int(ds['mode_size'].sel(mode=m))} params)"), 1, 1)
    fig.add_trace(go.Scatter(x=steps, y=ds["relative_error"].values, mode="lines", name="relative error",
                             line={"color": "black"}), 2, 1)
    n_fit = int(ds.attrs.get("n_fit_steps", steps.size))
    if n_fit < steps.size:
        fig.add_vline(x=float(steps[n_fit - 1]), line={"dash": "dot", "color": "grey"}, row=2, col=1)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_xaxes(title_text="training step", row=2, col=1)
    fig.update_layout(title=title, template="plotly_white", height=560, legend={"orientation": "h", "y": -0.12})
    return fig


def koopman_piecewise(ds: xr.Dataset, *, title: str = "Piecewise DMD: error as the number of windows grows"
                      ) -> go.Figure:
    """pDMD (Alla, Monti, Sgura 2024): per-step relative error for each window count N, and the
    global / max errors against N. ``ds`` from :func:`workbench.koopman.piecewise_dmd`."""
    require_vars(ds, ("step_error", "error", "max_error"), "piecewise_dmd()")
    counts = ds["n_windows"].values
    fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35],
                        subplot_titles=("‖x_t − x̂_t‖/‖x_t‖", "error vs number of windows N"))
    for n in counts:
        err = np.maximum(ds["step_error"].sel(n_windows=n).values, 1e-16)
        fig.add_trace(go.Scatter(x=ds["step"].values, y=err, mode="lines", name=f"N = {n}"), 1, 1)
    for var, label in (("error", "‖X − X̂‖_F/‖X‖_F"), ("max_error", "max over steps")):
        fig.add_trace(go.Scatter(x=counts, y=np.maximum(ds[var].values, 1e-16), mode="lines+markers", name=label),
                      1, 2)
    fig.update_yaxes(type="log")
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_xaxes(title_text="N", type="log", row=1, col=2)
    fig.update_layout(title=title, template="plotly_white")
    return fig
