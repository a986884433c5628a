"""Run browser page: table of runs, pick one → loss/accuracy curves, config; live while training.

The page logic is plain functions (:func:`run_table`, :func:`pick_run`, :func:`run_figures`,
:func:`config_json`, :func:`is_live`) that tests call without a browser; :class:`RunBrowser` only
wires them to widgets. A periodic callback (every :data:`REFRESH_MS`) re-reads the run list and, while
the selected run's status is ``"running"``, its metrics, so a run trained in another terminal moves
on screen. The selected run is mirrored in the URL (``/runs?run=<id>``).
"""
from __future__ import annotations

import pandas as pd
import panel as pn
import param

from widgets.apps import require_store
from widgets.plots.training import accuracy_curves, loss_curves
from workbench.store import Run, RunNotFoundError, RunStore

REFRESH_MS = 2000
TABLE_COLUMNS = ["run_id", "kind", "status", "step", "train_acc", "test_acc", "train_loss", "test_loss", "created"]


# -- page logic: plain functions -----------------------------------------------------------------
def run_table(store: RunStore) -> pd.DataFrame:
    """``store.list()`` with the browser's columns, newest run first (missing columns are NaN)."""
    df = store.list()
    for col in TABLE_COLUMNS:
        if col not in df.columns:
            df[col] = pd.NA
    df = df[TABLE_COLUMNS + [c for c in df.columns if c not in TABLE_COLUMNS]]
    return df.sort_values("created", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def pick_run(table: pd.DataFrame, current: str | None = None) -> str | None:
    """The run to show: ``current`` if still listed, else a running run, else the newest one."""
    if table.empty:
        return None
    ids = list(table["run_id"])
    if current in ids:
        return current
    running = table.loc[table["status"] == "running", "run_id"]
    return str(running.iloc[0]) if len(running) else str(ids[0])


def is_live(run: Run) -> bool:
    """True while a training process is writing to ``run`` (status ``"running"``)."""
    return run.state.get("status") == "running"


def run_figures(run: Run, log_x: bool = False):
    """``(loss figure, accuracy figure)`` of ``run``'s current metrics."""
    ds = run.metrics()
    return loss_curves(ds, log_x=log_x), accuracy_curves(ds, log_x=log_x)


def config_json(run: Run) -> dict:
    """What the config pane shows: id, status, step and the run's full config."""
    state = run.state
    return {"run_id": run.id, "status": state.get("status"), "step": state.get("step"),
            "config": run.config, "attrs": run.attrs}


def status_line(run: Run | None) -> str:
    """One markdown line about the selected run (with a live marker while it trains)."""
    if run is None:
        return "No runs yet: train one with `workbench train modular --data <root>` or `workbench demo`."
    state = run.state
    live = " · 🟢 **live** (refreshing every 2 s)" if is_live(run) else ""
    return f"**{run.id}** · status `{state.get('status')}` · step {state.get('step')}{live}"


# -- the page --------------------------------------------------------------------------------------
class RunBrowser(pn.viewable.Viewer):
    """Run table + curves + config of the selected run; ``refresh()`` is the periodic callback."""

    run_id = param.Selector(default=None, objects=[], allow_None=True, doc="Selected run")
    log_x = param.Boolean(default=False, doc="Logarithmic step axis")

    def __init__(self, store: RunStore, **params):
        self.store = require_store(store)
        super().__init__(**params)
        self._table = pn.widgets.Tabulator(pd.DataFrame(columns=TABLE_COLUMNS), selectable=1, disabled=True,
                                           show_index=False, max_height=200, sizing_mode="stretch_width",
                                           pagination=None)
        self._loss = pn.pane.Plotly(None, height=360, sizing_mode="stretch_width", name="loss")
        self._acc = pn.pane.Plotly(None, height=360, sizing_mode="stretch_width", name="accuracy")
        self._config = pn.pane.JSON({}, depth=2, sizing_mode="stretch_width", name="config")
        self._status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._was_live = False
        pn.bind(self._on_table_select, self._table.param.selection, watch=True)
        self.refresh_table()  # selecting a run draws it
        if self.run_id is None:
            self.update_view()

    # table ↔ selector
    def refresh_table(self) -> pd.DataFrame:
        """Re-read the run list; keep the selection (or pick one when none is selected)."""
        df = run_table(self.store)
        ids = list(df["run_id"])
        self.param.run_id.objects = ids
        self._table.value = df
        chosen = pick_run(df, self.run_id)
        if chosen != self.run_id:
            self.run_id = chosen
        self._sync_table_selection()
        return df

    def _sync_table_selection(self) -> None:
        ids = list(self._table.value["run_id"]) if len(self._table.value) else []
        want = [ids.index(self.run_id)] if self.run_id in ids else []
        if self._table.selection != want:
            self._table.selection = want

    def _on_table_select(self, selection: list[int]) -> None:
        if selection:
            run_id = str(self._table.value["run_id"].iloc[selection[0]])
            if run_id != self.run_id:
                self.run_id = run_id

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
        """Redraw curves, config and status of the selected run from the store."""
        run = self.selected()
        self._status.object = status_line(run)
        if run is None:
            self._loss.object = self._acc.object = None
            self._config.object = {}
            self._was_live = False
            return
        self._loss.object, self._acc.object = run_figures(run, self.log_x)
        self._config.object = config_json(run)
        self._was_live = is_live(run)

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
        return pn.Column(
            pn.pane.Markdown("Pick a run in the table (or the selector) to see its curves.", margin=(0, 10)),
            self._table, controls, pn.Row(self._loss, self._acc, sizing_mode="stretch_width"),
            pn.Card(self._config, title="config", collapsed=False, sizing_mode="stretch_width"),
            sizing_mode="stretch_width")


def page(store: RunStore) -> pn.viewable.Viewable:
    """The run browser for ``workbench serve`` (adds the live refresh in a server session)."""
    browser = RunBrowser(store)
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.location.sync(browser, {"run_id": "run"})
        pn.state.add_periodic_callback(browser.refresh, period=REFRESH_MS)
    return browser
