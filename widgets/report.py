"""A run's analysis as one self-contained HTML file (``workbench report RUN [--out FILE]``).

The report holds the run's curves and every lens that applies to it, decided by what the run
recorded rather than by its kind:

============== =====================================================================
lens           applies when the run has …
============== =====================================================================
curves         the train/test loss and accuracy (metric group ``train``)
grokking       the grokking probe (metric group ``grokking``)
superposition  toy-model weights (metric group ``toy``)
spectrum       a checkpoint (ESDs and alpha at the last one) or the ``spectrum`` probe
koopman        a parameter trajectory (``traj.zarr``) of at least 3 recorded steps
============== =====================================================================

Figures come from the same builders as the notebooks and the dashboard (:mod:`widgets.plots`).
They are stored in the page as plotly JSON, and plotly.js is inlined once, gzip-compressed and
base64-encoded (4.8 MB → ~1.9 MB); the browser unpacks it with ``DecompressionStream``, so the
file opens offline, from disk or as an e-mail attachment, with no server. The default demo run
gives a ~2 MB report.

This module lives in ``widgets`` because it needs the plot builders, and ``workbench`` never
imports ``widgets``; the ``workbench report`` command imports it lazily, as ``workbench serve``
does with :mod:`widgets.serve`.
"""
from __future__ import annotations

import base64
import gzip
import html
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import plotly
import plotly.graph_objects as go
import xarray as xr

if TYPE_CHECKING:  # imported where used, so the docs build can use the notebook helpers without torch
    from workbench.store import Run, RunStore

__all__ = ["Report", "Section", "add_plotly_html", "build_report", "export_notebook_html", "render_html",
           "write_report"]
PLOTLY_MIME = "application/vnd.plotly.v1+json"

MAX_ESDS = 2          # ESD figures per report (the first layers in model order)
KOOPMAN_WINDOW = 30   # recorded trajectory steps per DMD window
KOOPMAN_RANK = 8      # eigenvalues per window


@dataclass
class Section:
    """One lens of the report: a heading, a sentence of context, figures and optional HTML tables."""

    lens: str
    title: str
    text: str
    figures: list[go.Figure] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Everything a report shows, before it is rendered: the run's identity and its sections.

    ``skipped`` lists ``(lens, reason)`` for lenses whose data the run has but whose
    computation failed; they are named in the page and by the command, never dropped silently.
    """

    run_id: str
    config: dict
    state: dict
    sections: list[Section]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def figures(self) -> list[go.Figure]:
        """All figures, in page order."""
        return [fig for s in self.sections for fig in s.figures]


# -- lens sections: each returns None when the run did not record what the lens needs -------------
def _curves(run: Run) -> Section | None:
    if "train" not in run.groups():
        return None
    from widgets.plots.training import accuracy_curves, loss_curves

    ds = run.metrics("train")
    figs = []
    if any(v in ds for v in ("train_loss", "test_loss")):
        figs.append(loss_curves(ds))
    if any(v in ds for v in ("train_acc", "test_acc")):
        figs.append(accuracy_curves(ds))
    if not figs:
        return None
    return Section("curves", "Training curves", "Train and test loss and accuracy against the step.", figs)


def _grokking(run: Run) -> Section | None:
    if "grokking" not in run.groups():
        return None
    from widgets.plots.grokking import (
        fourier_spectrum,
        grokking_curves,
        logit_heatmap,
        neuron_clusters,
        progress_measures,
    )

    ds = run.metrics()
    figs = [grokking_curves(ds)]
    steps = ds.step.values[ds["embed_norm"].notnull().any("freq").values] if "embed_norm" in ds else []
    text = ("Nanda et al. (2023) progress measures: loss with the detected phases shaded; restricted and "
            "excluded loss, Gini and weight norm over training")
    if len(steps):
        step = int(steps[-1])
        at = ds.sel(step=step)
        figs.append(progress_measures(ds, step=step))
        keys = ds.attrs.get("key_freqs")
        keys = json.loads(keys) if isinstance(keys, str) else keys
        figs.append(fourier_spectrum(at, "embed_norm", key_freqs=keys,
                                     title=f"Embedding Fourier norms at step {step}"))
        if "neuron_freq" in at:
            figs.append(neuron_clusters(at))
        if "logit_fourier_2d" in at:
            figs.append(logit_heatmap(at))
        text += f"; the Fourier views at the last probe step ({step})"
        if keys:
            text += f", key frequencies {list(keys)}"
    return Section("grokking", "Grokking progress measures", text + ".", figs)


def _superposition(run: Run) -> Section | None:
    if "toy" not in run.groups():
        return None
    from widgets.plots.superposition import (
        dimensionality_scatter,
        feature_directions,
        superposition_grid,
    )
    from workbench.superposition import analyze

    ds = run.metrics("toy")
    ds = ds.isel(step=-1).drop_vars("step")
    toy = run.config.get("toy", {})
    sparsity = toy.get("sparsity")
    sparsities = [float(s) for s in (sparsity if isinstance(sparsity, list) else [sparsity])] if sparsity is not None else []
    n_inits = int(toy.get("n_inits", 1))
    text = "Elhage et al. (2022), Toy Models of Superposition: WᵀW and b, feature dimensionalities"
    if sparsities and len(sparsities) * n_inits == ds.sizes["instance"]:
        ds = ds.assign_coords(sparsity=("instance", np.repeat(sparsities, n_inits)))
        if "loss" in ds and n_inits > 1:  # one instance per sparsity: the best init, as in the run summary
            best = [int(i * n_inits + np.argmin(ds["loss"].values[i * n_inits:(i + 1) * n_inits]))
                    for i in range(len(sparsities))]
            ds = ds.isel(instance=best)
            text += f" (the lowest-loss of {n_inits} inits per sparsity)"
    ds = xr.merge([ds, analyze(ds)])
    figs = [superposition_grid(ds), dimensionality_scatter(ds)]
    if int(ds.sizes["hidden"]) == 2:
        figs.append(feature_directions(ds))
    return Section("superposition", "Superposition", text + ".", figs)


def _spectrum(run: Run) -> Section | None:
    steps = run.checkpoint_steps()
    has_probe = "spectrum" in run.groups()
    if not steps and not has_probe:
        return None
    from widgets.plots.spectrum import (
        alpha_by_layer,
        esd_plot,
        metric_table,
        spectrum_over_training,
    )
    from workbench.spectrum import analyze

    figs, tables, text = [], [], "Martin & Mahoney (2021) heavy-tailed self-regularisation"
    if steps:
        ds = analyze(run.load_model(step=steps[-1]), keep_evals=True)
        if ds.sizes.get("layer", 0):
            figs += [esd_plot(ds, str(name)) for name in ds.layer.values[:MAX_ESDS]]
            figs.append(alpha_by_layer(ds))
            tables.append(metric_table(ds).to_html(float_format=lambda v: f"{v:.4g}", border=0,
                                                   classes="metrics"))
            text += f": empirical spectral densities and per-layer metrics at the last checkpoint (step {steps[-1]})"
    if has_probe:
        probe = run.metrics("spectrum")
        phases = run.attrs.get("phases")
        figs += [spectrum_over_training(probe, var, phases=phases)
                 for var in ("alpha", "effective_rank", "delta_stable_rank") if var in probe]
        text += "; alpha and ranks over training from the spectrum probe"
    if not figs:
        return None
    return Section("spectrum", "Weight spectra", text + ".", figs, tables)


def _koopman(run: Run) -> Section | None:
    if not run.has_trajectory():
        return None
    from widgets.plots.koopman import koopman_eigenvalues, koopman_window_spectra
    from workbench.koopman import trajectory_spectrum

    traj = run.trajectory()
    n = int(traj.sizes["step"])
    if n < 3:
        return None
    window = min(KOOPMAN_WINDOW, n)
    rank = max(1, min(KOOPMAN_RANK, window - 2))  # rank < snapshot pairs keeps residuals informative
    spec = trajectory_spectrum(traj, window=window, stride=max(1, window // 2), rank=rank)
    last = spec.isel(window=-1)
    s0, s1 = int(last.step_start), int(last.step_end)
    figs = [koopman_window_spectra(spec), koopman_eigenvalues(last, title=f"Koopman eigenvalues, steps {s0}–{s1}")]
    text = (f"DMD of the recorded weight trajectory ({n} steps × {traj.sizes['param']} parameters) in sliding "
            f"windows of {window} steps, rank {rank}, coloured by ResDMD residual (Redman et al. 2024; "
            "Colbrook & Townsend 2023)")
    return Section("koopman", "Koopman spectra", text + ".", figs)


LENSES = {"curves": _curves, "grokking": _grokking, "superposition": _superposition,
          "spectrum": _spectrum, "koopman": _koopman}


def build_report(store: RunStore, run_id: str) -> Report:
    """Read run ``run_id`` and build every section that applies to it (no file is written).

    Raises
    ------
    RunNotFoundError
        ``run_id`` is not in ``store`` (the message lists the known runs).
    ValueError
        ``run_id`` is not a valid id, or the run recorded no metrics yet.
    """
    from workbench.store import RunStore

    if not isinstance(store, RunStore):
        raise TypeError(f"store must be a workbench.store.RunStore, got {type(store).__name__}")
    run = store.open(run_id)
    if not run.groups():
        raise ValueError(f"run {run_id!r} has no metrics yet (status {run.state.get('status')!r}, step "
                         f"{run.state.get('step')}): train it first, e.g. `workbench train ... --data {store.root}`")
    sections, skipped = [], []
    for lens, build in LENSES.items():
        try:
            section = build(run)
        except Exception as exc:  # noqa: BLE001 - one lens failing must not lose the others; it is named
            skipped.append((lens, f"{exc.__class__.__name__}: {exc}"))
            continue
        if section is not None:
            sections.append(section)
    return Report(run.id, run.config, run.state, sections, skipped)


# -- rendering -----------------------------------------------------------------------------------
def plotly_js_path() -> Path:
    """The plotly.js bundle shipped with plotly.py (the docs site serves this file too)."""
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _safe_json(obj) -> str:
    """JSON that cannot close its ``<script>`` element early ("<", ">" and "&" as \\u escapes)."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def figure_html(figure_json: str, div_id: str) -> str:
    """A placeholder ``<div>`` and the figure's JSON; :data:`RENDER_JS` draws it once plotly.js is loaded."""
    return (f'<div class="wb-plot" id="{div_id}"></div><script type="application/json" class="wb-figure" '
            f'data-target="{div_id}">{figure_json}</script>')


def add_plotly_html(nb: dict, prefix: str = "wb-nbfig") -> int:
    """Give every plotly output of notebook ``nb`` (nbformat dict) an HTML form, in place.

    papermill keeps figures as ``application/vnd.plotly.v1+json`` only, which nbconvert does not
    draw; each such output gets a ``text/html`` entry from :func:`figure_html` (the figure's
    JSON plus a target ``<div>``), drawn by :data:`RENDER_JS` on a page that loads plotly.js once.
    Returns the number of figures converted.
    """
    n = 0
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                fig = data[PLOTLY_MIME]
                fig = json.loads(fig) if isinstance(fig, str) else fig
                data["text/html"] = figure_html(_safe_json(fig), f"{prefix}-{n}")
                n += 1
    return n


@lru_cache(maxsize=1)
def _plotly_js_packed() -> str:
    """plotly.js (the copy bundled with plotly.py), gzip-compressed and base64-encoded."""
    return base64.b64encode(gzip.compress(plotly_js_path().read_bytes(), compresslevel=9, mtime=0)).decode("ascii")


#: Draws every ``script.wb-figure`` of the page into its target div (needs ``Plotly`` loaded).
RENDER_JS = """
async function wbRenderFigures() {
  for (const el of document.querySelectorAll("script.wb-figure")) {
    const target = document.getElementById(el.dataset.target);
    if (!target || target.classList.contains("js-plotly-plot")) continue;
    const fig = JSON.parse(el.textContent);
    await Plotly.newPlot(target, fig.data, fig.layout || {}, {responsive: true, displaylogo: false});
  }
}
"""

_LOADER = RENDER_JS + """
(async () => {
  const status = document.getElementById("wb-status");
  try {
    if (typeof DecompressionStream === "undefined") throw new Error("this browser has no DecompressionStream");
    const packed = document.getElementById("wb-plotlyjs").textContent.trim();
    const bytes = Uint8Array.from(atob(packed), c => c.charCodeAt(0));
    const code = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
    window.PlotlyConfig = {MathJaxConfig: "local"};
    const s = document.createElement("script");
    s.textContent = code;
    document.head.appendChild(s);
    await wbRenderFigures();
    status.remove();
    document.body.dataset.plotted = "true";
  } catch (err) {
    status.textContent = "The figures could not be drawn: " + err;
    document.body.dataset.plotted = "error";
  }
})();
"""

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:1rem 2rem;color:#222}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.meta{color:#555} nav a{margin-right:1rem} .wb-plot{min-height:420px;margin:1rem 0}
table{border-collapse:collapse;font-size:.85rem} td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:right}
details pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:.8rem} .skipped{color:#a33}
"""


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def render_html(report: Report) -> str:
    """The report as one HTML document: figures as plotly JSON, plotly.js inlined once (packed)."""
    esc = html.escape
    state = report.state
    summary = state.get("summary") or {}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>workbench report · {esc(report.run_id)}</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>Run {esc(report.run_id)}</h1>",
        (f'<p class="meta">kind <b>{esc(str(report.config.get("kind", "?")))}</b> · status '
        f'{esc(str(state.get("status")))} · step {esc(str(state.get("step")))} · created '
        f'{esc(str(state.get("created")))} · written by <code>workbench report</code></p>'),
        '<p id="wb-status">Drawing the figures… (this page needs JavaScript; it loads nothing from the network)</p>',
        "<nav>" + "".join(f'<a href="#{s.lens}">{esc(s.title)}</a>' for s in report.sections) + "</nav>",
    ]
    if summary:
        parts.append("<p>" + " · ".join(f"{esc(k)} <b>{esc(_fmt(v))}</b>" for k, v in summary.items()) + "</p>")
    n = 0
    for section in report.sections:
        parts += [f'<section id="{section.lens}"><h2>{esc(section.title)}</h2>', f"<p>{esc(section.text)}</p>"]
        for fig in section.figures:
            # "</" cannot end the JSON's script element early: plotly escapes "<" and ">" in to_json
            parts.append(figure_html(fig.to_json(), f"wb-fig-{n}"))
            n += 1
        parts += section.tables
        parts.append("</section>")
    if report.skipped:
        parts.append('<h2>Not shown</h2><ul class="skipped">' + "".join(
            f"<li><b>{esc(lens)}</b>: {esc(reason)}</li>" for lens, reason in report.skipped) + "</ul>")
    parts += ["<h2>Config</h2>", "<details open><summary>config.json</summary><pre>"
              + esc(json.dumps(report.config, indent=1)) + "</pre></details>",
              "<details><summary>state.json</summary><pre>" + esc(json.dumps(state, indent=1)) + "</pre></details>"]
    parts.append(_packed_plotly_scripts())
    parts.append("</body></html>")
    return "\n".join(parts)


def _packed_plotly_scripts() -> str:
    return (f'<script type="application/octet-stream" id="wb-plotlyjs">{_plotly_js_packed()}</script>\n'
            f"<script>{_LOADER}</script>")


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is a file to share
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_notebook_html(notebook: str | os.PathLike, out: str | os.PathLike) -> Path:
    """An executed notebook as one self-contained HTML file, its plotly figures drawn offline.

    nbconvert's HTML export (``lab`` template, without its CDN scripts) with :func:`add_plotly_html`
    applied and plotly.js inlined once (packed as in the reports). The notebook test harness keeps
    one per executed notebook.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    add_plotly_html(nb)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    # nbconvert links require.js and MathJax from a CDN; offline they only fail, so they go (TeX in
    # markdown cells then shows as source)
    body = re.sub(r"""<script[^>]*\ssrc=["']https?://[^"']*["'][^>]*>\s*</script>""", "", body)
    marker = "</body>"
    status = '<p id="wb-status" style="display:none"></p>'
    body = body.replace(marker, status + _packed_plotly_scripts() + marker) if marker in body else body + \
        status + _packed_plotly_scripts()
    path = Path(out)
    _atomic_write_text(path, body)
    return path


def write_report(store: RunStore, run_id: str, out: str | os.PathLike | None = None) -> tuple[Path, Report]:
    """Build the report of ``run_id`` and write it to ``out`` (default ``report-<run id>.html``).

    The output directory must exist; the file is written to a temporary name beside it and renamed,
    so an error leaves no half-written report (and an existing file at ``out`` untouched).

    Returns
    -------
    (path, report)
        The written file and the :class:`Report` (its ``skipped`` lenses, if any).
    """
    path = Path(out) if out is not None else Path(f"report-{run_id}.html")
    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; give a file name such as {path / 'report.html'}")
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: directory {path.parent} does not exist (create it first)")
    report = build_report(store, run_id)   # every check that reads the run comes before any write
    _atomic_write_text(path, render_html(report))
    return path, report
