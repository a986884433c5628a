"""JupyterLab explorers: the dashboard's lens pages inline in a notebook, and a run explorer.

:class:`GrokkingExplorer`, :class:`SpectrumExplorer`, :class:`KoopmanExplorer`,
:class:`SuperpositionExplorer` and :class:`RunsExplorer` *are* the dashboard's page classes
(``pn.viewable.Viewer``s, one implementation for both surfaces), opened on a run: the last
expression of a cell displays them; ``pn.ipywidget(explorer)`` (through ``jupyter_bokeh``)
makes one an ipywidget where a notebook composes ipywidgets. Their work runs inline (a cell returns
once the view is drawn).

:class:`RunExplorer` (:func:`run_explorer`) is an ipywidgets view: controls driving plotly
``FigureWidget``s; the figures come from the same builders (``widgets.plots``), re-called when a
control changes and swapped into the FigureWidgets. (plotly ≥ 6 renders ``FigureWidget`` through
``anywidget``.)
"""
from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
import panel as pn
import plotly.graph_objects as go
import xarray as xr

from widgets.apps.grokking import GrokkingPage
from widgets.apps.koopman import KoopmanPage
from widgets.apps.runs import RunBrowser
from widgets.apps.spectrum import SpectrumPage
from widgets.apps.superposition import SuperpositionPage
from widgets.plots.training import accuracy_curves, curve_variables, loss_curves, metric_curves
from workbench.store import Run, RunStore

__all__ = ["GrokkingExplorer", "KoopmanExplorer", "RunExplorer", "RunsExplorer", "SpectrumExplorer",
           "SuperpositionExplorer", "run_explorer"]

#: Curve variables listed first in the value line, in this order; the rest follow alphabetically.
VALUE_ORDER = ("train_loss", "test_loss", "train_acc", "test_acc", "restricted_loss", "excluded_loss", "gini",
               "weight_norm", "key_freq_fraction")


def _resolve(run: Run | RunStore | str, store: RunStore | None) -> tuple[Run, RunStore]:
    """``(run, store)`` from a Run, a RunStore (its newest run) or a run id with ``store``."""
    if isinstance(run, RunStore):
        store, ids = run, run.ids()
        if not ids:
            raise ValueError(f"run store {store.root} holds no runs: train one first (`workbench demo`)")
        return store.open(ids[-1]), store
    if isinstance(run, str):
        if not isinstance(store, RunStore):
            raise TypeError("a run id needs store=RunStore(...) to open it")
        return store.open(run), store
    if isinstance(run, Run):
        return run, run.store
    raise TypeError(f"run must be a workbench Run, a RunStore or a run id, got {type(run).__name__}")


_extension_loaded = False


def _load_extension() -> None:
    """Load Panel's notebook extension (plotly, tabulator) once, so an explorer displays inline; its
    JavaScript is sent inline, so a notebook without network access still renders it."""
    global _extension_loaded
    if not _extension_loaded:
        pn.extension("plotly", "tabulator", inline=True)
        _extension_loaded = True


def _open(page: pn.viewable.Viewer, parameter: str, run: Run) -> None:
    """Select ``run`` on ``page``, or say why this page cannot show it."""
    objects = list(page.param[parameter].objects)
    if run.id not in objects:
        raise ValueError(f"run {run.id} has no data for {type(page).__name__}; runs it can show: {objects}")
    setattr(page, parameter, run.id)


class GrokkingExplorer(GrokkingPage):
    """The Grokking page on ``run`` (a run with the grokking probe): step slider, Fourier spectrum,
    neuron clusters, logit heatmap, progress measures."""

    def __init__(self, run: Run | RunStore | str, store: RunStore | None = None, **params):
        _load_extension()
        run, store = _resolve(run, store)
        super().__init__(store, **params)
        _open(self, "run_id", run)


class SpectrumExplorer(SpectrumPage):
    """The Spectra page on ``run`` (a run with checkpoints): ESDs, alpha per layer, metric table."""

    def __init__(self, run: Run | RunStore | str, store: RunStore | None = None, **params):
        _load_extension()
        run, store = _resolve(run, store)
        super().__init__(store, threaded=False, **params)
        _open(self, "source", run)


class KoopmanExplorer(KoopmanPage):
    """The Koopman page on ``run`` (a run with a parameter trajectory): eigenvalues per window."""

    def __init__(self, run: Run | RunStore | str, store: RunStore | None = None, **params):
        _load_extension()
        run, store = _resolve(run, store)
        super().__init__(store, threaded=False, **params)
        _open(self, "run_id", run)


class SuperpositionExplorer(SuperpositionPage):
    """The Superposition page: a stored superposition ``run``, or (``run=None``) toy models trained
    with the page's sliders — at the defaults the paper's pentagon at S = 0.99."""

    def __init__(self, run: Run | None = None, store: RunStore | None = None, **params):
        _load_extension()
        if run is None:
            super().__init__(store if store is not None else RunStore(), threaded=False, **params)
            self.start_training()
        else:
            run, store = _resolve(run, store)
            super().__init__(store, threaded=False, **params)
            _open(self, "run_id", run)


class RunsExplorer(RunBrowser):
    """The run browser (table, curves, overlay of selected runs) on ``run``'s store, ``run`` selected."""

    def __init__(self, run: Run | RunStore | str, store: RunStore | None = None, **params):
        _load_extension()
        run, store = _resolve(run, store)
        super().__init__(store, **params)
        _open(self, "run_id", run)

ACCURACY = "accuracy (train/test)"
FIGURE_SIZE = {"height": 340, "width": 430}  # two side by side fit a notebook beside the file browser


def _replace_figure(target: go.FigureWidget, source: go.Figure) -> None:
    """Swap ``source``'s traces and layout into the displayed ``target`` in one front-end update."""
    with target.batch_update():
        target.data = ()
        target.add_traces(list(source.data))
        target.layout = source.layout
        target.update_layout(**FIGURE_SIZE)


def ordered(variables: list[str]) -> list[str]:
    """``variables`` with :data:`VALUE_ORDER` first (in that order), then the rest alphabetically."""
    first = [v for v in VALUE_ORDER if v in variables]
    return first + sorted(v for v in variables if v not in first)


def _value_table(ds: xr.Dataset, step: int, variables: list[str]) -> str:
    """HTML line with every curve variable's value at ``step`` (losses, accuracies, then the rest)."""
    if step is None or not variables:
        return ""
    row = ds.sel(step=step)
    cells = " · ".join(f"<b>{html.escape(v)}</b> {float(row[v]):.4g}" for v in ordered(variables)
                       if np.isfinite(float(row[v])))
    return f"<div style='font-family:monospace'>step {int(step)}: {cells}</div>"


class RunExplorer(widgets.VBox):
    """Run picker, metric picker, step slider and log-x toggle over a run's training curves.

    Left figure: :func:`widgets.plots.loss_curves`; right figure: the picked metric (accuracy via
    :func:`widgets.plots.accuracy_curves`, any other 1-D metric via ``metric_curves``). The step
    slider marks a step on both and lists every metric's value there. ``refresh()`` (or the
    button) re-reads the store, e.g. while the run is still training.
    """

    def __init__(self, run: Run | RunStore | str, store: RunStore | None = None):
        run, store = _resolve(run, store)
        self.store = store
        self.run_picker = widgets.Dropdown(options=store.ids(), value=run.id, description="run",
                                           layout=widgets.Layout(width="340px"))
        self.metric_picker = widgets.Dropdown(options=[ACCURACY], value=ACCURACY, description="metric",
                                              layout=widgets.Layout(width="300px"))
        self.step_slider = widgets.SelectionSlider(options=[0], value=0, description="step",
                                                   continuous_update=False, layout=widgets.Layout(width="520px"))
        self.log_x = widgets.Checkbox(value=False, description="log-x", indent=False,
                                      layout=widgets.Layout(width="80px"))
        self.refresh_button = widgets.Button(description="refresh", icon="refresh",
                                             tooltip="re-read the run store (live runs)")
        self.values = widgets.HTML()
        self.ds = xr.Dataset()
        self._updating = False
        self._read()
        # The FigureWidgets start from the first figures: updates sent before the front end has
        # rendered a widget can be lost, its initial state cannot.
        loss, other = self.figures()
        self.loss_fig = go.FigureWidget(loss.update_layout(**FIGURE_SIZE))
        self.metric_fig = go.FigureWidget(other.update_layout(**FIGURE_SIZE))
        self._update_values()
        super().__init__([
            widgets.HBox([self.run_picker, self.metric_picker, self.log_x, self.refresh_button]),
            widgets.HBox([self.step_slider]), self.values,
            widgets.HBox([self.loss_fig, self.metric_fig], layout=widgets.Layout(flex_flow="row wrap"))])
        self.run_picker.observe(lambda _: None if self._updating else self.load(), names="value")
        self.metric_picker.observe(lambda _: self.redraw(), names="value")
        self.log_x.observe(lambda _: self.redraw(), names="value")
        self.step_slider.observe(lambda _: self.redraw(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())

    @property
    def run(self) -> Run:
        return self.store.open(self.run_picker.value)

    def load(self) -> None:
        """Read the picked run's metrics, reset the pickers to what it records, redraw."""
        self._read()
        self.redraw()

    def _read(self) -> None:
        self.ds = self.run.metrics()
        others = ordered([v for v in curve_variables(self.ds) if v not in ("train_loss", "test_loss", "train_acc",
                                                                            "test_acc")]) if self.ds.data_vars else []
        steps = [int(s) for s in self.ds["step"].values] or [0]
        self._updating = True  # one redraw for all the control changes below
        try:
            metric = self.metric_picker.value
            self.metric_picker.options = [ACCURACY, *others]
            self.metric_picker.value = metric if metric in self.metric_picker.options else ACCURACY
            keep_last = self.step_slider.value == self.step_slider.options[-1]
            old = self.step_slider.value
            self.step_slider.options = steps
            self.step_slider.value = steps[-1] if keep_last or old not in steps else old
            self.step_slider.disabled = self.ds.sizes.get("step", 0) == 0
        finally:
            self._updating = False

    def refresh(self) -> None:
        """Re-read the run list and the picked run's metrics (new steps of a live run appear)."""
        ids = self.store.ids()
        if list(self.run_picker.options) != ids:
            current = self.run_picker.value
            self._updating = True
            try:
                self.run_picker.options = ids
                self.run_picker.value = current if current in ids else ids[-1]
            finally:
                self._updating = False
        self.load()

    def figures(self) -> tuple[go.Figure, go.Figure]:
        """The two figures for the current control values (plain ``go.Figure``s)."""
        marker = self.step_slider.value if self.ds.sizes.get("step", 0) else None
        loss = loss_curves(self.ds, log_x=self.log_x.value, marker_step=marker)
        if self.metric_picker.value == ACCURACY:
            other = accuracy_curves(self.ds, log_x=self.log_x.value, marker_step=marker)
        else:
            name = self.metric_picker.value
            other = metric_curves(self.ds, [name], title=name, y_title=name, log_x=self.log_x.value,
                                  log_y=name.endswith("_loss"), marker_step=marker)
        return loss, other

    def redraw(self) -> None:
        """Rebuild both figures from the plot functions and swap them into the FigureWidgets."""
        if self._updating:
            return
        loss, other = self.figures()
        _replace_figure(self.loss_fig, loss)
        _replace_figure(self.metric_fig, other)
        self._update_values()

    def _update_values(self) -> None:
        variables = curve_variables(self.ds) if self.ds.data_vars else []
        self.values.value = _value_table(self.ds, self.step_slider.value, variables) if variables else \
            "<i>no metrics recorded yet</i>"


def run_explorer(run: Run | RunStore | str, store: RunStore | None = None) -> RunExplorer:
    """Interactive view of a run's training curves for JupyterLab.

    Parameters
    ----------
    run : Run, RunStore or str
        The run to show first (a ``RunStore`` opens its last run; a run id needs ``store``). The
        run picker lists every run of the same store.
    store : RunStore, optional
        Needed only when ``run`` is a run id.

    Returns
    -------
    RunExplorer
        An ``ipywidgets.VBox``; display it (last expression of a cell) to interact.
    """
    return RunExplorer(run, store)
