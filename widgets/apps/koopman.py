"""Koopman page: pick a run, window, rank, delays → Koopman eigenvalues of its weight trajectory.

Views: eigenvalues of the chosen window on the complex plane with the unit circle, coloured by ResDMD
residual; the spectra of all windows over training; the window's DMD modes; the reconstruction error.
Page logic lives in plain functions (:func:`koopman_runs`, :func:`clip_settings`, :func:`compute_view`)
that tests call without a browser. The computation runs in a background thread behind a loading
indicator, so the server never blocks.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import panel as pn
import param
import plotly.graph_objects as go
import xarray as xr

from widgets.apps import require_store
from widgets.plots.koopman import koopman_eigenvalues, koopman_modes, koopman_window_spectra
from workbench.koopman import DMD, HankelDMD, trajectory_spectrum
from workbench.store import RunStore


# -- page logic: plain functions -----------------------------------------------------------------
def koopman_runs(store: RunStore) -> list[str]:
    """Ids of runs that recorded a parameter trajectory, newest first."""
    runs = [r for r in store if (r.path / "traj.zarr").exists()]
    runs.sort(key=lambda r: r.state.get("created", ""), reverse=True)
    return [r.id for r in runs]


@dataclass(frozen=True)
class Settings:
    window: int
    stride: int
    rank: int
    delays: int


def clip_settings(n_steps: int, window: int, rank: int, delays: int) -> Settings:
    """Fit requested settings to a trajectory of ``n_steps`` recorded steps (≥ 3 needed)."""
    if n_steps < 3:
        raise ValueError(f"the run has only {n_steps} recorded trajectory steps; need at least 3")
    delays = max(1, min(delays, n_steps - 2))
    window = max(delays + 2, min(window, n_steps))
    rank = max(1, min(rank, window - delays - 1))  # rank < pairs keeps residuals informative
    return Settings(window, max(1, window // 2), rank, delays)


def compute_view(traj: xr.DataArray, settings: Settings, window_index: int = -1) -> dict:
    """Spectra of all windows, plus the DMD of one window (``window_index``, −1 = last, clipped).

    The reconstruction error is ‖X̂ − X‖ / ‖X − mean(X)‖ over the window (relative to its variation).
    """
    spec = trajectory_spectrum(traj, window=settings.window, stride=settings.stride, rank=settings.rank,
                               delays=settings.delays)
    n = spec.sizes["window"]
    w = n - 1 if window_index < 0 else min(window_index, n - 1)
    s0 = int(np.nonzero(traj["step"].values == int(spec.step_start[w]))[0][0])
    X = np.asarray(traj.isel(step=slice(s0, s0 + settings.window)).values, dtype=np.float64)
    est = (HankelDMD(settings.delays, settings.rank) if settings.delays > 1 else DMD(settings.rank)).fit(X)
    recon = est.reconstruct()
    err = float(np.linalg.norm(recon - X) / max(np.linalg.norm(X - X.mean(0)), 1e-300))
    return {"spectrum": spec, "window": w, "dmd": est.to_dataset(), "reconstruction_error": err,
            "steps": (int(spec.step_start[w]), int(spec.step_end[w]))}


def view_figures(view: dict) -> dict[str, go.Figure]:
    s0, s1 = view["steps"]
    win = view["spectrum"].isel(window=view["window"])
    return {"eigs": koopman_eigenvalues(win, title=f"Koopman eigenvalues, steps {s0}–{s1}"),
            "windows": koopman_window_spectra(view["spectrum"]),
            "modes": koopman_modes(view["dmd"], title="DMD modes of the window (|φ| over params)")}


def summary_line(run_id: str, view: dict, settings: Settings) -> str:
    s0, s1 = view["steps"]
    res = view["spectrum"]["residual"].isel(window=view["window"]).values
    return (f"**{run_id}** · window {view['window']} (steps {s0}–{s1}) · rank {settings.rank} · delays "
            f"{settings.delays} · median residual {np.nanmedian(res):.2e} · relative reconstruction error "
            f"{view['reconstruction_error']:.2e}")


# -- the page --------------------------------------------------------------------------------------
class KoopmanPage(pn.viewable.Viewer):
    """Run / window / rank / delays → eigenvalue, window-spectra and mode figures (background compute)."""

    run_id = param.Selector(default=None, objects=[], allow_None=True, doc="Run with a parameter trajectory")
    window = param.Integer(default=20, bounds=(3, 400), doc="Recorded steps per window")
    rank = param.Integer(default=8, bounds=(1, 50), doc="DMD rank")
    delays = param.Integer(default=1, bounds=(1, 20), doc="Time delays (Hankel DMD)")
    window_index = param.Integer(default=-1, bounds=(-1, 1000), doc="Which window to show (-1 = last)")

    def __init__(self, store: RunStore, *, background: bool = True, **params):
        self.store, self.background = require_store(store), background
        super().__init__(**params)
        self._status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._panes = {k: pn.pane.Plotly(None, height=h, sizing_mode="stretch_width", name=k)
                       for k, h in (("eigs", 480), ("windows", 520), ("modes", 320))}
        self._busy = pn.indicators.LoadingSpinner(value=False, size=24)
        self._lock = threading.Lock()
        self._generation = 0
        self.param.run_id.objects = koopman_runs(store)
        if self.run_id is None and self.param.run_id.objects:
            self.run_id = self.param.run_id.objects[0]
        self.param.watch(lambda e: self.update(), ["run_id", "window", "rank", "delays", "window_index"])
        self.update()

    def _compute(self, generation: int, run_id: str) -> None:
        try:
            traj = self.store.open(run_id).trajectory()
            settings = clip_settings(traj.sizes["step"], self.window, self.rank, self.delays)
            view = compute_view(traj, settings, self.window_index)
            figs, text = view_figures(view), summary_line(run_id, view, settings)
        except (ValueError, TypeError, KeyError, OSError, RuntimeError) as exc:  # show it on the page, not a blank
            figs, text = {}, f"**{run_id}**: {exc}"

        def apply() -> None:
            if generation != self._generation:
                return  # a newer request superseded this one
            for name, fig in figs.items():
                self._panes[name].object = fig
            self._status.object = text
            self._busy.value = False

        if self.background and pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.execute(apply)
        else:
            apply()

    def update(self) -> None:
        """Recompute for the current settings (in a thread when serving)."""
        if self.run_id is None:
            self._status.object = "No run with a parameter trajectory yet: train with `trajectory_every > 0`."
            return
        with self._lock:
            self._generation += 1
            generation = self._generation
        self._busy.value = True
        self._status.object = f"Computing Koopman spectra of **{self.run_id}** …"
        if self.background:
            threading.Thread(target=self._compute, args=(generation, self.run_id), daemon=True).start()
        else:
            self._compute(generation, self.run_id)

    def __panel__(self):
        controls = pn.Param(self.param, parameters=["run_id", "window", "rank", "delays", "window_index"],
                            widgets={"run_id": {"type": pn.widgets.Select, "width": 360},
                                     "window": pn.widgets.IntInput, "rank": pn.widgets.IntInput,
                                     "delays": pn.widgets.IntInput, "window_index": pn.widgets.IntInput},
                            default_layout=pn.Row, show_name=False)
        return pn.Column(
            pn.pane.Markdown("## Koopman\nDMD spectra of the weight trajectory, window by window, with ResDMD "
                             "residuals (Colbrook & Townsend 2023; Redman et al. 2024)."),
            controls, pn.Row(self._busy, self._status), self._panes["eigs"], self._panes["windows"],
            self._panes["modes"], sizing_mode="stretch_width")


def page(store: RunStore) -> pn.viewable.Viewable:
    """The Koopman page for ``workbench serve``."""
    return KoopmanPage(store)
