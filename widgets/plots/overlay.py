"""Several runs' curves on one chart, coloured by a hyperparameter (the run browser's comparison).

Pure: ``{run_id: metrics Dataset}`` and ``{run_id: value}`` → plotly Figure; no I/O.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go
import xarray as xr

from .empty import empty_figure

__all__ = ["overlay_curves"]

COLORSCALE = "Viridis"


def _numeric(values: list[object]) -> bool:
    return all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v)
               for v in values)


def _colors(values: list[object]) -> tuple[list[str], dict | None]:
    """One colour per run: a Viridis position for numeric values (log-spaced when they span > 10×),
    else a qualitative colour per distinct value. Also the colour bar's (min, max, log) if numeric."""
    if values and _numeric(values):
        x = np.asarray(values, dtype=float)
        log = bool(x.min() > 0 and x.max() / x.min() > 10)
        t = np.log10(x) if log else x
        span = t.max() - t.min()
        pos = (t - t.min()) / span if span > 0 else np.full(len(t), 0.5)
        return pc.sample_colorscale(COLORSCALE, pos.tolist()), {"lo": float(t.min()), "hi": float(t.max()), "log": log}
    palette = pc.qualitative.Plotly
    distinct = list(dict.fromkeys(str(v) for v in values))
    return [palette[distinct.index(str(v)) % len(palette)] for v in values], None


def overlay_curves(curves: Mapping[str, xr.Dataset], var: str, *, color_by: Mapping[str, object] | None = None,
                   color_name: str = "", log_y: bool = False) -> go.Figure:
    """``var`` against ``step`` for every run of ``curves``, one line each, coloured by ``color_by``.

    Parameters
    ----------
    curves : run id → that run's ``metrics()``.
    var : a 1-D variable along ``step`` (runs without it are listed in the title as skipped).
    color_by : run id → hyperparameter value (numbers: a Viridis scale with a colour bar, log-spaced
        when the values span more than a decade; anything else: one qualitative colour per value).
    color_name : the hyperparameter's name, for the legend and colour bar.
    """
    have = {rid: ds for rid, ds in curves.items() if var in ds.data_vars and ds[var].dims == ("step",)}
    if not have:
        return empty_figure(f"none of the selected runs records {var!r}", title=f"{var}: runs compared")
    values = [(color_by or {}).get(rid) for rid in have]
    colors, bar = _colors(values) if color_by else ([None] * len(have), None)
    fig = go.Figure()
    for (rid, ds), color, value in zip(have.items(), colors, values):
        da = ds[var]
        keep = np.isfinite(da.values)
        label = f"{rid} ({color_name}={value})" if color_by else rid
        fig.add_scatter(x=ds.step.values[keep], y=da.values[keep], mode="lines", name=label,
                        line={"color": color}, hovertemplate=f"{label}<br>step %{{x}}<br>{var} %{{y:.4g}}<extra></extra>")
    if bar is not None:  # an invisible marker carries the colour bar
        ticks = np.linspace(bar["lo"], bar["hi"], 5)
        fig.add_scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip", marker={
            "colorscale": COLORSCALE, "cmin": bar["lo"], "cmax": bar["hi"], "color": [bar["lo"]],
            "showscale": True, "colorbar": {"title": {"text": color_name}, "tickvals": ticks.tolist(),
                                            "ticktext": [f"{10 ** t if bar['log'] else t:.3g}" for t in ticks]}})
    skipped = [rid for rid in curves if rid not in have]
    title = f"{var}: {len(have)} runs" + (f" (coloured by {color_name})" if color_by else "")
    if skipped:
        title += f" · without {var}: {', '.join(skipped)}"
    fig.update_layout(title=title, template="plotly_white", xaxis_title="step", yaxis_title=var,
                      yaxis_type="log" if log_y else "linear", legend={"orientation": "h", "y": -0.25},
                      margin={"l": 60, "r": 20, "t": 50, "b": 60})
    return fig
