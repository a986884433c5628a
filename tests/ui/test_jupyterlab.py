"""JupyterLab in headless Chromium: open the tour notebook, run every cell, see the explorer render.

``jupyter lab`` serves a temp copy of ``notebooks/`` on 127.0.0.1 with a random token; the copy of
``00_tour.ipynb`` gets ``quick = True`` injected after its parameters cell (as papermill does), and
the kernel writes runs into a temp data root (``WORKBENCH_DATA``). Without the tour notebook a
two-cell notebook calling ``run_explorer`` is used instead.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from .conftest import REPO, VENV_BIN, child_env, free_port, stop, wait_for_http

pytestmark = pytest.mark.ui

NOTEBOOK = "00_tour.ipynb"
TIMEOUT_MS = 120_000

# The ipywidgets explorer's output: the VBox holding a step slider and plotly FigureWidgets.
EXPLORER_JS = """() => {
  for (const box of document.querySelectorAll('.jp-OutputArea-output .widget-vbox')) {
    const slider = box.querySelector('.widget-slider, .widget-hslider');
    const plots = Array.from(box.querySelectorAll('.js-plotly-plot'));
    if (!slider || !plots.length) continue;
    return {slider: slider.innerText,
            traces: plots.map(gd => (gd.data || []).map(t => (t.x || []).length))};
  }
  return null;
}"""


# Plotly figures rendered by Panel (inside Bokeh's shadow roots, unlike static plotly outputs): trace names.
PANEL_PLOTS_JS = """() => {
  const found = [];
  const walk = (root, shadow) => {
    if (shadow) root.querySelectorAll('.js-plotly-plot').forEach(gd => found.push((gd.data || []).map(t => t.name)));
    root.querySelectorAll('*').forEach(el => { if (el.shadowRoot) walk(el.shadowRoot, true); });
  };
  walk(document, false);
  return found;
}"""


def prepare_notebooks(dest):
    """Copy notebooks/ to ``dest``; force ``quick = True`` in the tour (or write a small notebook)."""
    src = REPO / "notebooks"
    if (src / NOTEBOOK).exists():
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.json"))
        nb = nbformat.read(dest / NOTEBOOK, as_version=4)
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell("quick = True  # injected by the browser test"))
    else:
        dest.mkdir()
        nb = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell(
                "from workbench.store import RunStore\nfrom workbench.grokking.modular_run import ModularConfig, "
                "train_modular\nrun = train_modular(ModularConfig(p=23, steps=200), RunStore(), progress=False)"),
            nbformat.v4.new_code_cell("from widgets.explorers import run_explorer\nrun_explorer(run)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, dest / NOTEBOOK)
    return dest


@pytest.fixture
def jupyter_lab(tmp_path):
    """``(base_url, token)`` of a JupyterLab on 127.0.0.1 serving a temp copy of notebooks/."""
    root = prepare_notebooks(tmp_path / "notebooks")
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "lab.log"
    env = child_env(WORKBENCH_DATA=str(tmp_path / "runs"), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter_config"),
                    JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab_settings"),
                    JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab_workspaces"),
                    JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter_runtime"))
    # only what the test needs: no panel/LSP server extensions (seconds of start-up each)
    skip_extensions = "{'panel.io.jupyter_server_extension': False, 'jupyter_lsp': False}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "jupyter"), "lab", "--ip", "127.0.0.1", "--port", str(port), "--no-browser",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
             f"--ServerApp.jpserver_extensions={skip_extensions}", "--LabApp.news_url=",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
            + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/api/status?token={token}", proc, 90, log)
        yield url, token
    finally:
        stop(proc)


def run_all_cells(page, attempts: int = 3) -> None:
    """Run ▸ Run All Cells; retried while no cell started (menu items are inert until the notebook
    panel is the current widget)."""
    for _ in range(attempts):
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]")).first.wait_for(timeout=15_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"Run All Cells did not start any cell after {attempts} attempts")


def test_tour_notebook_renders_the_run_explorer(jupyter_lab, browser_page, tmp_path):
    url, token = jupyter_lab
    page = browser_page
    page.set_default_timeout(TIMEOUT_MS)
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text) if msg.type in ("error", "warning") else None)
    page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    # wait for the kernel, focus the notebook, then Run ▸ Run All Cells from the menu bar
    page.get_by_text("Python 3 (ipykernel) | Idle").first.wait_for()
    run_all_cells(page)

    deadline, found = time.monotonic() + TIMEOUT_MS / 1000, None
    while time.monotonic() < deadline:
        found = page.evaluate(EXPLORER_JS)
        if found and found["traces"] and all(sum(t) > 0 for t in found["traces"]):
            break
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
        assert not tracebacks, f"a notebook cell failed:\n{tracebacks[0][-2000:]}"
        page.wait_for_timeout(500)
    if not found:
        page.screenshot(path=str(tmp_path / "jupyterlab.png"))
    assert found, f"no explorer (widget VBox with a slider and a plotly plot) appeared in the outputs; screenshot: {tmp_path / 'jupyterlab.png'}"
    assert "step" in found["slider"]
    assert len(found["traces"]) == 2 and all(len(t) == 2 and min(t) > 1 for t in found["traces"]), found
    if (REPO / "notebooks" / NOTEBOOK).exists():  # the tour's last cell: the Grokking page inline
        deadline, names = time.monotonic() + 60, []
        while time.monotonic() < deadline and not any("embed_norm" in n for n in names):
            names = page.evaluate(PANEL_PLOTS_JS)
            page.wait_for_timeout(500)
        if not any("embed_norm" in n for n in names):
            page.screenshot(path=str(tmp_path / "jupyterlab.png"), full_page=True)
            outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
        assert any("embed_norm" in n for n in names), \
            f"GrokkingExplorer did not render inline: {names}; last outputs {outputs[-3:]}; console {console[-5:]}"
    assert not [m for m in console if "anywidget" in m.lower()], console
