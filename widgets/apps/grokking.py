"""Grokking page: pick a run, scrub a step → Fourier spectrum, neuron clusters, logit heatmap.

Runs of finite-group tasks (``workbench train groups``, probe group ``groups``) show the same
page in the irrep basis: energy per irrep with the key irreps, and the neurons' irrep concentration.

Progress-measure curves (restricted/excluded loss, Gini, weight norm, key-frequency share) carry a
marker at the chosen step; a periodic callback re-reads a run while it trains, so the page follows
it live. Logic lives in plain functions (:func:`grokking_runs`, :func:`probe_steps`,
:func:`step_figures`, :func:`summary_line`) that tests call without a browser; :class:`GrokkingPage`
only binds them to widgets. Reading a run's metrics is the only I/O and takes milliseconds, so it
runs in the callback; nothing is computed here beyond selecting a step.
"""
from __future__ import annotations

import json

import panel as pn
import param
import plotly.graph_objects as go
import xarray as xr

from widgets.apps import require_store
from widgets.apps.background import JobPool
from widgets.apps.status import is_live, status_markdown
from widgets.apps.url import sync_url
from widgets.plots.empty import empty_figure
from widgets.plots.grokking import (
    fourier_spectrum,
    grokking_curves,
    irrep_spectrum,
    logit_heatmap,
    neuron_clusters,
    neuron_concentration,
    progress_measures,
)
from workbench.store import RunStore

REFRESH_MS = 3000
PROBE_GROUPS = ("grokking", "groups")  # Z_p Fourier probe; finite-group irrep probe


# -- page logic: plain functions -----------------------------------------------------------------
def grokking_runs(store: RunStore) -> list[str]:
    """Ids of runs that hold grokking probe data (metric group ``grokking`` or ``groups``), newest first."""
    runs = [r for r in store if set(PROBE_GROUPS) & set(r.groups())]
    runs.sort(key=lambda r: r.state.get("created", ""), reverse=True)
    return [r.id for r in runs]


def load_metrics(store: RunStore, run_id: str) -> xr.Dataset:
    """All metrics of the run (train curves + grokking probe), with its attrs."""
    return store.open(run_id).metrics()


def probe_steps(ds: xr.Dataset) -> list[int]:
    """Steps at which the probe ran (where ``embed_norm``, or ``irrep_energy`` for groups, is recorded)."""
    var = "embed_norm" if "embed_norm" in ds else "irrep_energy" if "irrep_energy" in ds else None
    if var is None:
        return []
    rec = ds[var].notnull().any(ds[var].dims[-1])
    return [int(s) for s in ds.step.values[rec.values]]


def nearest_step(steps: list[int], step: int | None) -> int | None:
    """The probe step closest to ``step`` (the last one when ``step`` is None)."""
    if not steps:
        return None
    if step is None:
        return steps[-1]
    return min(steps, key=lambda s: abs(s - step))


def key_freqs_of(ds: xr.Dataset) -> list[int] | None:
    """The run's final key frequencies from its attrs (JSON), if set."""
    raw = ds.attrs.get("key_freqs")
    if raw is None:
        return None
    return list(json.loads(raw)) if isinstance(raw, str) else list(raw)


def step_figures(ds: xr.Dataset, step: int) -> dict[str, go.Figure]:
    """Figures at ``step``: ``spectrum``, ``clusters``, ``heatmap`` and ``progress`` (with a marker)."""
    at = ds.sel(step=step)
    if "irrep_energy" in at and "embed_norm" not in at:
        return {"spectrum": irrep_spectrum(at, title=f"Embedding energy per irrep at step {step} (red: key)"),
                "clusters": neuron_concentration(at) if "neuron_concentration" in at else empty_figure(
                    "this run's model has no hidden neurons", title="Neurons by irrep concentration"),
                "heatmap": empty_figure("the logits' 2-D Fourier basis is defined for Z_p runs",
                                        title="Logits in the 2-D Fourier basis"),
                "progress": progress_measures(ds, step=step)}
    figs = {"spectrum": fourier_spectrum(at, "embed_norm", title=f"Embedding Fourier norms at step {step}")}
    figs["clusters"] = neuron_clusters(at) if "neuron_freq" in at else empty_figure(
        "this run's probe did not record neuron clusters (neuron_freq)", title="Neurons per frequency cluster")
    figs["heatmap"] = logit_heatmap(at) if "logit_fourier_2d" in at else empty_figure(
        "this run's probe did not record the logits' 2-D Fourier norms", title="Logits in the 2-D Fourier basis")
    figs["progress"] = progress_measures(ds, step=step)
    return figs


def summary_line(ds: xr.Dataset, run_id: str, step: int | None, live: bool, status: str = "") -> str:
    """Markdown line: run, step, accuracies at the step, final key frequencies, then the live marker
    or ``status`` (a stopped run's status and resume command, :func:`status_markdown`)."""
    if step is None:
        return f"**{run_id}**: no grokking probe data yet."
    parts = [f"**{run_id}** · step {step}"]
    for var in ("train_acc", "test_acc", "restricted_loss", "excluded_loss"):
        if var in ds:
            v = ds[var].sel(step=step)
            if bool(v.notnull()):
                parts.append(f"{var} {float(v):.3g}")
    if "key_irreps" in ds.attrs:
        irreps = ds.attrs["key_irreps"]
        irreps = json.loads(irreps) if isinstance(irreps, str) else list(irreps)
        parts.append(f"{ds.attrs.get('group', 'group')}: key irreps {irreps}" if irreps else
                     "key irreps: none yet — no irrep stands out in the embedding (expected before grokking)")
    keys = key_freqs_of(ds)
    if keys:
        parts.append(f"key freqs {keys}")
    elif keys is not None:
        parts.append("key freqs: none — no frequency stands out in the embedding's Fourier norms "
                     "(no Fourier circuit formed: expected before or without grokking)")
    return " · ".join(parts) + (" · 🟢 **live**" if live else f" · {status}" if status else "")


# -- the page --------------------------------------------------------------------------------------
class GrokkingPage(pn.viewable.Viewer):
    """Run selector + step slider → four figures; ``refresh()`` follows a training run."""

    run_id = param.Selector(default=None, objects=[], allow_None=True, doc="Run with grokking probes")
    step = param.Integer(default=0, bounds=(0, 1), doc="Probe step")

    def __init__(self, store: RunStore, **params):
        self.store = require_store(store)
        super().__init__(**params)
        self._ds: xr.Dataset | None = None
        self._steps: list[int] = []
        self._status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._curves = pn.pane.Plotly(None, height=320, sizing_mode="stretch_width", name="curves")
        self._panes = {k: pn.pane.Plotly(None, height=h, sizing_mode="stretch_width", name=k)
                       for k, h in (("spectrum", 320), ("clusters", 320), ("heatmap", 360), ("progress", 680))}
        self._slider = pn.widgets.IntSlider(label="step", start=0, end=1, value=0, sizing_mode="stretch_width")
        pn.bind(self._set_step, self._slider.param.value_throttled, watch=True)
        self.refresh_runs()  # selecting a run draws it
        if self.run_id is None:
            self.reload()

    def refresh_runs(self) -> None:
        ids = grokking_runs(self.store)
        if list(self.param.run_id.objects) != ids:  # an unchanged list is not sent to the browser again
            self.param.run_id.objects = ids
        if self.run_id not in ids:
            self.run_id = ids[0] if ids else None

    def _live(self) -> bool:
        return self.run_id is not None and is_live(self.store.open(self.run_id))

    def _set_step(self, step: int) -> None:
        self.step = step

    @param.depends("run_id", watch=True)
    def _on_run(self) -> None:
        self.reload(keep_step=False)

    def reload(self, keep_step: bool = True) -> None:
        """Re-read the selected run's metrics; move the slider range (and to the end unless kept)."""
        if self.run_id is None:
            self._ds, self._steps = None, []
            self._status.object = "No grokking runs yet: `workbench train grokking --data <root>`."
            for pane in (self._curves, *self._panes.values()):
                pane.object = empty_figure("no grokking run in this data root yet")
            return
        self._ds = load_metrics(self.store, self.run_id)
        self._steps = probe_steps(self._ds)
        self._curves.object = grokking_curves(self._ds)
        if self._steps:
            at_end = self.step >= self._slider.end
            self._slider.start, self._slider.end = self._steps[0], max(self._steps[-1], self._steps[0] + 1)
            self._slider.step = self._steps[1] - self._steps[0] if len(self._steps) > 1 else 1
            target = self.step if keep_step and not at_end else self._steps[-1]
            self.param.step.bounds = (self._slider.start, self._slider.end)
            self._slider.value = target
            if self.step != target:
                self.step = target
                return
        self.update_step_view()

    @param.depends("step", watch=True)
    def update_step_view(self) -> None:
        """Redraw the step figures at the probe step nearest the slider."""
        if self._ds is None:
            return
        step = nearest_step(self._steps, self.step)
        run = self.store.open(self.run_id)
        stopped = "" if run.status in ("done", "running") else status_markdown(run)
        self._status.object = summary_line(self._ds, self.run_id, step, is_live(run), stopped)
        if step is None:
            for pane in self._panes.values():
                pane.object = empty_figure("the grokking probe has not run yet (it runs every probe_every steps)")
            return
        for name, fig in step_figures(self._ds, step).items():
            self._panes[name].object = fig

    def refresh(self) -> None:
        """Periodic callback: new runs appear; a live run is re-read."""
        self.refresh_runs()
        if self._live():
            self.reload(keep_step=True)

    def __panel__(self):
        return pn.Column(
            pn.pane.Markdown("## Grokking\nNanda et al. (2023) progress measures. Pick a run and scrub the "
                             "probe step."),
            pn.Row(pn.widgets.Select.from_param(self.param.run_id, label="run", width=360), self._slider),
            self._status, self._curves,
            pn.Row(self._panes["spectrum"], self._panes["clusters"], sizing_mode="stretch_width"),
            pn.Row(self._panes["heatmap"], sizing_mode="stretch_width"), self._panes["progress"],
            sizing_mode="stretch_width")


def page(store: RunStore, jobs: JobPool | None = None) -> pn.viewable.Viewable:
    """The grokking page for ``workbench serve`` (live refresh in a server session).

    ``jobs`` (the server's pool) is unused: this page reads stored results and computes nothing.
    """
    view = GrokkingPage(store)
    if pn.state.curdoc is None or pn.state.curdoc.session_context is None:
        return view
    alert = sync_url(view, "run_id")
    pn.state.add_periodic_callback(view.refresh, period=REFRESH_MS)
    return pn.Column(alert, view, sizing_mode="stretch_width")
