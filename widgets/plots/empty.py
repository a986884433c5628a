"""The empty state of every view: a figure with no axes and a sentence saying why it is empty."""
from __future__ import annotations

import plotly.graph_objects as go

__all__ = ["empty_figure", "is_empty"]


def empty_figure(message: str, *, title: str = "", height: int | None = None) -> go.Figure:
    """A blank figure (axes hidden, so no invented ranges) with ``message`` in its middle.

    Pages put this in a plot pane instead of ``None`` (which plotly draws as empty −1…6 axes).
    """
    if not isinstance(message, str) or not message:
        raise ValueError("message must be a non-empty string saying why the view is empty")
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font={"size": 14, "color": "#666"})
    fig.update_layout(title=title, template="plotly_white", xaxis={"visible": False},
                      yaxis={"visible": False}, meta={"empty": message}, margin={"l": 20, "r": 20, "t": 50, "b": 20})
    if height is not None:
        fig.update_layout(height=height)
    return fig


def is_empty(fig: go.Figure) -> bool:
    """True for a figure made by :func:`empty_figure`."""
    meta = fig.layout.meta
    return isinstance(meta, dict) and "empty" in meta
