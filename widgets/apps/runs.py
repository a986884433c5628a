"""Run browser page, the dashboard's hub: every run with its hyperparameters; pick one for its
curves, config and links to every lens page that can show it; pick several to overlay them.

The page logic is plain functions (:func:`run_table`, :func:`pick_run`, :func:`run_figures`,
:func:`config_json`, :func:`status_line`, :func:`compare_figure`) that tests call without a browser;
:class:`RunBrowser` only wires them to widgets. A periodic callback (every :data:`REFRESH_MS`)
re-reads the run list and, while the selected run is live (:attr:`Run.status` ``running``: its
writer process is alive), its metrics, so a run trained in another terminal moves on screen. The
selected run is mirrored in the URL (``/runs?run=<id>``); a link naming an unknown run says so.
"""
from __future__ import annotations

import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go

from widgets.apps import require_store
from widgets.apps.background import JobPool
from widgets.apps.run_table import HYPERPARAMETERS, lens_links, run_table
from widgets.apps.status import is_live, status_markdown
from widgets.apps.url import sync_url
from widgets.plots.empty import empty_figure
from widgets.plots.overlay import overlay_curves
from widgets.plots.training import accuracy_curves, curve_variables, loss_curves
from workbench.store import Run, RunNotFoundError, RunStore

__all__ = ["RunBrowser", "compare_figure", "config_json", "is_live", "page", "pick_run", "run_figures",
           "run_table", "status_line"]

REFRESH_MS = 2000
AUTO, NONE = "auto", "none"


# -- page logic: plain functions -----------------------------------------------------------------
def pick_run(table: pd.DataFrame, current: str | None = None) -> str | None:
    """The run to show: ``current`` if still listed, else a live run, else the newest one."""
    if table.empty:
        return None
    ids = list(table["run_id"])
    if current in ids:
        return current
    running = table.loc[table["status"] == "running", "run_id"]
    return str(running.iloc[0]) if len(running) else str(ids[0])


def run_figures(run: Run, log_x: bool = False) -> tuple[go.Figure, go.Figure]:
    """``(loss figure, accuracy figure)`` of ``run``'s current metrics."""
    ds = run.metrics()
    if not ds.data_vars:
        empty = f"run {run.id} has recorded no metrics yet"
        return empty_figure(empty, title="loss"), empty_figure(empty, title="accuracy")
    return loss_curves(ds, log_x=log_x), accuracy_curves(ds, log_x=log_x)


def config_json(run: Run) -> dict:
    """What the config pane shows: id, status, step and the run's full config."""
    state = run.state
    return {"run_id": run.id, "status": run.status, "step": state.get("step"), "config": run.config,
            "attrs": run.attrs}


def status_line(run: Run | None, links: dict[str, str] | None = None) -> str:
    """Markdown about the selected run: status (live marker, or why it stopped) and its lens pages."""
    if run is None:
        return "No runs yet: train one with `workbench train modular --data <root>` or `workbench demo`."
    live = " · 🟢 **live** (refreshing every 2 s)" if is_live(run) else ""
    text = f"**{run.id}** · {status_markdown(run)} · step {run.state.get('step')}{live}"
    if links:
        text += "  \nOpen in: " + " · ".join(f"[{name}]({url})" for name, url in links.items())
    return text


def color_column(table: pd.DataFrame, ids: list[str], choice: str) -> str | None:
    """The column colouring the comparison: ``choice``, or for ``auto`` the first hyperparameter
    that differs between the runs ``ids`` (None: one colour per run)."""
    if choice == NONE:
        return None
    if choice != AUTO:
        return choice if choice in table.columns else None
    rows = table[table["run_id"].isin(ids)]
    return next((c for c in [*HYPERPARAMETERS, "sweep", "kind"]
                 if c in rows.columns and rows[c].astype(str).nunique() > 1), None)


def compare_figure(store: RunStore, table: pd.DataFrame, ids: list[str], var: str, color: str = AUTO,
                   log_y: bool = False) -> go.Figure:
    """``var`` of the runs ``ids`` on one chart, coloured by a table column (:func:`color_column`)."""
    if len(ids) < 2:
        return empty_figure("select two or more rows (Ctrl/⌘-click) to overlay their curves",
                            title="compare runs")
    column = color_column(table, ids, color)
    values = dict(zip(table["run_id"], table[column])) if column else None
    curves = {rid: store.open(rid).metrics() for rid in ids}
    return overlay_curves(curves, var, color_by={rid: values[rid] for rid in ids} if values else None,
                          color_name=column or "", log_y=log_y)


# -- the page --------------------------------------------------------------------------------------
class RunBrowser(pn.viewable.Viewer):
    """Run table + curves + config of the selected run + overlay of the selected rows."""

    run_id = param.Selector(default=None, objects=[], allow_None=True, doc="Selected run")
    log_x = param.Boolean(default=False, doc="Logarithmic step axis")
    compare = param.List(default=[], item_type=str, doc="Runs overlaid (the table's selected rows)")
    metric = param.Selector(default="test_acc", objects=["test_acc"], doc="Metric overlaid")
    color = param.Selector(default=AUTO, objects=[AUTO, NONE], doc="Column colouring the overlay")

    def __init__(self, store: RunStore, **params):
        self.store = require_store(store)
        super().__init__(**params)
        self._table = pn.widgets.Tabulator(pd.DataFrame(), selectable=True, disabled=True, show_index=False,
                                           sizing_mode="stretch_width", pagination="local", page_size=20,
                                           header_filters=True, layout="fit_data_table", frozen_columns=["run_id"])
        self._loss = pn.pane.Plotly(None, height=360, sizing_mode="stretch_width", name="loss")
        self._acc = pn.pane.Plotly(None, height=360, sizing_mode="stretch_width", name="accuracy")
        self._compare = pn.pane.Plotly(None, height=420, sizing_mode="stretch_width", name="compare")
        self._config = pn.pane.JSON({}, depth=2, sizing_mode="stretch_width", name="config")
        self._status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._was_live = False
        pn.bind(self._on_table_select, self._table.param.selection, watch=True)
        self.refresh_table()  # selecting a run draws it
        if self.run_id is None:
            self.update_view()
        self.update_compare()

    # table ↔ selector
    def refresh_table(self) -> pd.DataFrame:
        """Re-read the run list; keep the selection (or pick one when none is selected)."""
        df = run_table(self.store)
        ids = list(df["run_id"])
        colors = [AUTO, *(c for c in [*HYPERPARAMETERS, "sweep", "kind", "status"] if c in df.columns), NONE]
        # nothing unchanged is sent to the browser again (every 2 s per open page)
        if list(self.param.run_id.objects) != ids:
            self.param.run_id.objects = ids
        if list(self.param.color.objects) != colors:
            self.param.color.objects = colors
        if not df.equals(self._table.value):
            self._table.value = df
        chosen = pick_run(df, self.run_id)
        if chosen != self.run_id:
            self.run_id = chosen
        self.compare = [r for r in self.compare if r in ids]
        self._sync_table_selection()
        return df

    def _sync_table_selection(self) -> None:
        ids = list(self._table.value["run_id"]) if len(self._table.value) else []
        chosen = self.compare if self.run_id in self.compare else [self.run_id]
        want = sorted(ids.index(r) for r in chosen if r in ids)
        if sorted(self._table.selection) != want:
            self._table.selection = want

    def _on_table_select(self, selection: list[int]) -> None:
        ids = [str(self._table.value["run_id"].iloc[i]) for i in selection if i < len(self._table.value)]
        if not ids:
            return
        added = [r for r in ids if r not in self.compare]
        with param.parameterized.batch_call_watchers(self):
            self.compare = ids if len(ids) > 1 else []
            if self.run_id not in ids or added:
                self.run_id = (added or ids)[-1]

    @param.depends("run_id", "log_x", watch=True)
    def _on_select(self) -> None:
        self._sync_table_selection()
        self.update_view()

    # views
    def selected(self) -> Run | None:
        if self.run_id is None:
            return None
        try:
            return self.store.open(self.run_id)
        except (RunNotFoundError, ValueError):
            return None

    def update_view(self) -> None:
        """Redraw curves, config, status and links of the selected run from the store."""
        run = self.selected()
        if run is None:
            self._status.object = status_line(None)
            self._loss.object = self._acc.object = empty_figure("no run selected")
            self._config.object = {}
            self._was_live = False
            return
        sweep = self._table.value.set_index("run_id")["sweep"].get(run.id, "") if "sweep" in self._table.value else ""
        self._status.object = status_line(run, lens_links(run, sweep))
        self._loss.object, self._acc.object = run_figures(run, self.log_x)
        self._config.object = config_json(run)
        self._was_live = is_live(run)

    @param.depends("compare", "metric", "color", watch=True)
    def update_compare(self) -> None:
        """Redraw the overlay of the compared runs."""
        names = sorted({v for rid in self.compare for v in curve_variables(self.store.open(rid).metrics())})
        if names and list(self.param.metric.objects) != names:
            self.param.metric.objects = names
            if self.metric not in names:
                self.metric = "test_acc" if "test_acc" in names else names[0]  # redraws through this watcher
                return
        self._compare.object = compare_figure(self.store, self._table.value, self.compare, self.metric, self.color,
                                              log_y=self.metric.endswith("loss"))

    def refresh(self) -> None:
        """Periodic callback: new runs appear; the selected run is redrawn while it is live.

        One more redraw happens when a live run stops, so its last steps are shown.
        """
        self.refresh_table()
        run = self.selected()
        if run is not None and (is_live(run) or self._was_live):
            self.update_view()

    def __panel__(self):
        controls = pn.Row(pn.widgets.Select.from_param(self.param.run_id, label="run", width=300),
                          pn.widgets.Checkbox.from_param(self.param.log_x, label="log-x step axis",
                                                         margin=(30, 10, 10, 10)),
                          pn.Column(pn.Spacer(height=12), self._status, sizing_mode="stretch_width"),
                          sizing_mode="stretch_width")
        compare = pn.Row(pn.widgets.Select.from_param(self.param.metric, label="metric", width=220),
                         pn.widgets.Select.from_param(self.param.color, label="colour by", width=220))
        return pn.Column(
            pn.pane.Markdown("Click a row for its curves; Ctrl/⌘-click more rows to overlay them below. "
                             "Sort by a column header, filter under it.", margin=(0, 10)),
            self._table, controls, pn.Row(self._loss, self._acc, sizing_mode="stretch_width"),
            pn.pane.Markdown("### Compare runs", margin=(0, 10)), compare, self._compare,
            pn.Card(self._config, title="config", collapsed=False, sizing_mode="stretch_width"),
            sizing_mode="stretch_width")


def page(store: RunStore, jobs: JobPool | None = None) -> pn.viewable.Viewable:
    """The run browser for ``workbench serve`` (URL sync and live refresh in a server session).

    ``jobs`` (the server's pool) is unused: this page reads stored results and computes nothing.
    """
    browser = RunBrowser(store)
    if pn.state.curdoc is None or pn.state.curdoc.session_context is None:
        return browser
    alert = sync_url(browser, "run_id")
    pn.state.add_periodic_callback(browser.refresh, period=REFRESH_MS)
    return pn.Column(alert, browser, sizing_mode="stretch_width")
