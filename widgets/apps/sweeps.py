"""Sweeps page: pick a sweep → phase-diagram heatmap; click a cell → that run's curves.

Page logic is plain functions (:func:`sweep_options`, :func:`sweep_figure`, :func:`run_id_from_click`,
:func:`cell_figures`, :func:`run_link`) that tests call without a browser; :class:`SweepBrowser`
wires them to widgets. Sweeps are found through their records (store artifacts of kind ``sweep``) and
their results rebuilt from the runs (:func:`workbench.sweep.load_sweep`), so a sweep that is
still running fills in on each refresh (every :data:`REFRESH_MS` while its status is ``running``).
"""
from __future__ import annotations

import panel as pn
import param
import plotly.graph_objects as go
import xarray as xr

from widgets.apps import require_store
from widgets.apps.background import JobPool
from widgets.apps.url import sync_url
from widgets.plots.empty import empty_figure
from widgets.plots.sweep import heatmap_cell, sweep_heatmap, sweep_variables
from widgets.plots.training import accuracy_curves, loss_curves
from workbench.store import RunNotFoundError, RunStore
from workbench.sweep import list_sweeps, load_sweep

REFRESH_MS = 3000
DEFAULT_VAR = "steps_to_test_95"
#: Tried in order for the first view: the first one with a value in some cell is drawn.
PREFERRED_VARS = (DEFAULT_VAR, "final_test_acc", "final_test_loss", "final_train_acc")


# -- page logic: plain functions -----------------------------------------------------------------
def sweep_options(store: RunStore) -> list[str]:
    """Sweep ids in the store, newest first."""
    df = list_sweeps(store)
    return df.sort_values("created", ascending=False, kind="stable")["sweep_id"].tolist() if len(df) else []


def sweep_figure(store: RunStore, sweep_id: str, var: str = DEFAULT_VAR) -> tuple[go.Figure, xr.Dataset]:
    """The heatmap of ``var`` for ``sweep_id``, and the sweep's Dataset."""
    ds = load_sweep(store, sweep_id)
    return heatmap_of(ds, var), ds


def heatmap_of(ds: xr.Dataset, var: str) -> go.Figure:
    """The heatmap of ``var`` (first two grid axes; others at their first value)."""
    extra = list(ds["run_id"].dims)[2:]
    view = ds.isel({d: 0 for d in extra}) if extra else ds
    return sweep_heatmap(view, var if var in sweep_variables(view) else default_variable(view))


def default_variable(ds: xr.Dataset) -> str:
    """The first of :data:`PREFERRED_VARS` with a finite value in some cell (else the first drawable)."""
    names = sweep_variables(ds)
    for var in PREFERRED_VARS:
        if var in names and bool(ds[var].notnull().any()):
            return var
    return DEFAULT_VAR if DEFAULT_VAR in names else names[0]


def run_id_from_click(click_data: dict | None, fig: go.Figure | None = None) -> str | None:
    """The run id of a clicked heatmap cell (plotly ``click_data``), or None.

    A point's own ``customdata`` is used when the browser sent it; a heatmap's click carries only
    the cell's labels, looked up in ``fig`` (:func:`widgets.plots.sweep.heatmap_cell`).
    """
    points = (click_data or {}).get("points") or []
    if not points:
        return None
    run_id = points[0].get("customdata")
    if not run_id and fig is not None:
        run_id = heatmap_cell(fig, points[0].get("x"), points[0].get("y", ""))
    return str(run_id) if run_id else None


def cell_figures(store: RunStore, run_id: str) -> tuple[go.Figure, go.Figure]:
    """``(loss, accuracy)`` curves of one cell's run."""
    ds = store.open(run_id).metrics()
    return loss_curves(ds), accuracy_curves(ds)


def run_link(run_id: str) -> str:
    """Markdown link opening the run in the run browser."""
    return f"Run **{run_id}** · [open in the run browser](./runs?run={run_id})"


# -- the page --------------------------------------------------------------------------------------
class SweepBrowser(pn.viewable.Viewer):
    """Sweep selector + variable selector + heatmap; a clicked cell shows its run below."""

    sweep_id = param.Selector(default=None, objects=[], allow_None=True, doc="Sweep")
    var = param.Selector(default=DEFAULT_VAR, objects=[DEFAULT_VAR], doc="Variable drawn")
    run_id = param.String(default=None, allow_None=True, doc="Clicked cell's run")

    def __init__(self, store: RunStore, **params):
        self.store = require_store(store)
        super().__init__(**params)
        self._heatmap = pn.pane.Plotly(None, height=440, sizing_mode="stretch_width", name="phase diagram")
        self._loss, self._acc = (pn.pane.Plotly(empty_figure("click a heatmap cell to see its run's curves"),
                                                height=320, sizing_mode="stretch_width", name=name)
                                 for name in ("loss", "accuracy"))
        self._info = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._cell = pn.pane.Markdown("Click a cell to see its run.", sizing_mode="stretch_width")
        self._status = None
        pn.bind(self._on_click, self._heatmap.param.click_data, watch=True)
        self.refresh_list()  # selecting a sweep draws it
        if self.sweep_id is None:
            self.update_view()

    def refresh_list(self) -> None:
        ids = sweep_options(self.store)
        if list(self.param.sweep_id.objects) != ids:  # an unchanged list is not sent to the browser again
            self.param.sweep_id.objects = ids
        if self.sweep_id not in ids:
            self.sweep_id = ids[0] if ids else None

    @param.depends("sweep_id", "var", watch=True)
    def update_view(self) -> None:
        """Redraw the heatmap of the selected sweep from the store."""
        if self.sweep_id is None:
            self._heatmap.object = empty_figure("no sweep in this data root yet")
            self._info.object = "No sweeps yet: run `workbench sweep modular --grid wd=0.1,1.0 --grid frac=0.3,0.5`."
            return
        ds = load_sweep(self.store, self.sweep_id)
        names = sweep_variables(ds)
        if list(self.param.var.objects) != names:
            self.param.var.objects = names
            if self.var not in names or not bool(ds[self.var].notnull().any()):
                var = default_variable(ds)
                if var != self.var:
                    self.var = var  # redraws through this watcher
                    return
        self._heatmap.object = heatmap_of(ds, self.var)
        self._status = ds.attrs.get("status")
        done = int((ds.status == "done").sum())
        self._info.object = (f"**{ds.sweep_id}** · task `{ds.task}` · status `{self._status}` · "
                             f"{done}/{ds.run_id.size} runs done · fixed: `{ds.attrs.get('base')}`")

    def _on_click(self, click_data: dict | None) -> None:
        run_id = run_id_from_click(click_data, self._heatmap.object)
        if run_id:
            self.run_id = run_id

    @param.depends("run_id", watch=True)
    def _on_run(self) -> None:
        if not self.run_id:
            return
        try:
            self._loss.object, self._acc.object = cell_figures(self.store, self.run_id)
            self._cell.object = run_link(self.run_id)
        except (RunNotFoundError, ValueError):
            self._cell.object = f"Run {self.run_id} has not started yet."

    def refresh(self) -> None:
        """Periodic callback: new sweeps appear; a running sweep is redrawn."""
        self.refresh_list()
        if self._status == "running":
            self.update_view()

    def __panel__(self):
        controls = pn.Row(pn.widgets.Select.from_param(self.param.sweep_id, label="sweep", width=320),
                          pn.widgets.Select.from_param(self.param.var, label="variable", width=220))
        return pn.Column(controls, self._info, self._heatmap, self._cell,
                         pn.Row(self._loss, self._acc, sizing_mode="stretch_width"), sizing_mode="stretch_width")


def page(store: RunStore, jobs: JobPool | None = None) -> pn.viewable.Viewable:
    """The Sweeps page for ``workbench serve`` (periodic refresh in a server session).

    ``jobs`` (the server's pool) is unused: this page reads stored results and computes nothing.
    """
    browser = SweepBrowser(store)
    if pn.state.curdoc is None or pn.state.curdoc.session_context is None:
        return browser
    alert = sync_url(browser, "sweep_id", key="sweep", what="sweep")
    pn.state.add_periodic_callback(browser.refresh, period=REFRESH_MS)
    return pn.Column(alert, browser, sizing_mode="stretch_width")
