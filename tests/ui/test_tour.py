"""The new user's tour of the dashboard, in headless Chromium, on a fresh data root.

The root holds what a researcher has after a first afternoon: a modular MLP run, a grokking run
that grokked, one interrupted with Ctrl-C before it could (so it never grokked), a superposition
run and a 2×2 sweep. One server; the walk visits every page as issue 24's tester did and asserts
each behaviour that was broken then. It also takes the lens pictures of the README and the docs:
``make screenshots`` runs this module with ``WORKBENCH_SCREENSHOTS=docs/images`` (otherwise they
go to a temporary directory, so the screenshot code runs in every ``make test``).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from tests.ui.conftest import REPO, WORKBENCH, child_env, serving, stop
from tests.ui.plots import figures, wait_for_points
from widgets.apps.koopman import clip_settings
from widgets.apps.sweeps import default_variable
from workbench.store import RunStore

pytestmark = [pytest.mark.ui, pytest.mark.slow]

def figure_with(page, trace: str | None = None, *, kind: str | None = None, timeout: float = 60.0) -> dict:
    """The first figure drawing a trace named ``trace`` (or of type ``kind``); waits for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for fig in figures(page):
            if any(t["name"] == trace if kind is None else t["type"] == kind for t in fig["traces"]):
                return fig
        page.wait_for_timeout(300)
    raise AssertionError(f"no figure with a trace {trace or kind!r}; traces: "
                         f"{[[t['name'] for t in f['traces']] for f in figures(page)]}")


def overlapping(boxes: list[dict]) -> list[tuple[str, str]]:
    """Pairs of annotation boxes whose rectangles intersect."""
    return [(a["text"], b["text"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a["x0"] < b["x1"] and b["x0"] < a["x1"] and a["y0"] < b["y1"] and b["y0"] < a["y1"]]


def shoot(page, fig: dict, name: str, shots: Path) -> None:
    """Screenshot one figure (by its ``data-figure`` index, without its toolbar) to ``shots/name``."""
    figure = page.locator(f"[data-figure='{fig['index']}']").first
    figure.evaluate("gd => gd.querySelectorAll('.modebar-container').forEach(m => m.style.display = 'none')")
    figure.screenshot(path=str(shots / name))


GROKKED = {"p": 31, "frac": 0.5, "d_model": 64, "d_head": 16, "d_mlp": 256, "lr": 3e-3, "wd": 3.0,  # notebook 01's
           "steps": 700, "eval_every": 10, "probe_every": 50, "checkpoint_every": 350, "trajectory_every": 50}  # quick config


def interrupted_grokking_run(root: Path, log: Path) -> str:
    """``workbench train grokking`` with Ctrl-C after its first probes; returns the run id."""
    args = [WORKBENCH, "train", "grokking", "--data", str(root), "--p", "23", "--frac", "0.5", "--d-model", "32",
            "--d-mlp", "64", "--steps", "100000", "--eval-every", "5", "--probe-every", "25",
            "--checkpoint-every", "100", "--trajectory-every", "50", "--no-progress"]
    store, before = RunStore(root), set(RunStore(root).ids())
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            new = sorted(set(store.ids()) - before)
            if new and store.open(new[0]).state.get("step", 0) >= 120:
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.3)
        else:
            raise AssertionError(f"the grokking run never reached step 120:\n{log.read_text()}")
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        stop(proc)
    return new[0]


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """The tour's data root and run ids (about a minute of training on two cores)."""
    import torch

    from tests.ui.test_superposition_page import SMALL_GRID
    from tests.ui.test_sweeps_page import tiny_sweep
    from widgets.apps.superposition import PHASE_KIND, PHASE_NAME
    from workbench.grokking import GrokkingConfig, ModularConfig, train_grokking, train_modular
    from workbench.superposition import ToyRunConfig, phase_diagram, train_toy_run

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tour")
    store = RunStore(root)
    ids = {"modular": train_modular(ModularConfig(p=23, steps=200, checkpoint_every=100), store, progress=False).id,
           "grokked": train_grokking(GrokkingConfig(**GROKKED), store, progress=False).id,
           "interrupted": interrupted_grokking_run(root, tmp_path_factory.mktemp("logs") / "train.log"),
           "toy": train_toy_run(ToyRunConfig(sparsity=[0.0, 0.9], n_inits=1, steps=100), store, progress=False).id}
    store.save_artifact(PHASE_KIND, PHASE_NAME, phase_diagram(**SMALL_GRID))  # a small one: the page's takes minutes
    grid = tiny_sweep(root)
    return root, ids, grid


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get("WORKBENCH_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_the_tour(tour, shots, chromium_browser, tmp_path):
    root, ids, grid = tour
    store = RunStore(root)
    assert store.open(ids["interrupted"]).state["status"] == "interrupted"
    assert store.open(ids["grokked"]).attrs["phases"]["grokked"] is True  # the run the tour needs did grok
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda r: outside.append(r.url)
            if r.url.startswith("http") and urlparse(r.url).hostname not in ("127.0.0.1", "localhost") else None)
    with serving(root, tmp_path) as url:
        # -- Runs: every run visible, hyperparameter columns, the interrupted run not live, overlay, bad link
        page.goto(url + "/")
        page.wait_for_url("**/runs**")
        rows = page.locator(".tabulator-row")
        rows.nth(len(store.ids()) - 1).wait_for()
        assert rows.count() == len(store.ids()) == 8
        holder = page.locator(".tabulator-tableholder").first
        assert holder.evaluate("h => h.scrollHeight <= h.clientHeight + 1"), "the table hides rows behind a scroll"
        assert page.locator(".tabulator-col", has_text="wd").count() >= 1
        assert page.locator(".tabulator-row", has_text=ids["interrupted"]).first.inner_text().count("interrupted")
        assert page.get_by_text("live").count() == 0
        cells = [str(r) for r in grid.run_id.values.ravel()]
        page.locator(".tabulator-row", has_text=cells[0]).first.click()
        page.locator(".tabulator-row", has_text=cells[-1]).first.click(modifiers=["Control"])
        points = wait_for_points(page, lambda p: sum(1 for k in p if str(k).split(" ")[0] in cells) >= 2, timeout=60)
        assert all(("wd=" in k or "frac=" in k) for k in points if str(k).split(" ")[0] in cells)  # coloured by
        page.goto(url + "/runs?run=no-such-run")
        page.get_by_text("cannot show run").wait_for()

        # -- Grokking: no phase bands on the run that never grokked, an explained empty key-frequency set;
        #    bands with readable labels and titled subplots on the run that did
        page.goto(f"{url}/grokking?run={ids['interrupted']}")
        curves = figure_with(page, "test loss")
        assert curves["bands"] == 0, "phase bands drawn on a run that never grokked"
        page.get_by_text("status interrupted").first.wait_for()  # and how to resume it
        page.goto(f"{url}/grokking?run={ids['grokked']}")
        wait_for_points(page, lambda p: p.get("restricted loss", 0) == GROKKED["steps"] // GROKKED["probe_every"] + 1,
                        timeout=60)
        curves = figure_with(page, "test loss")
        assert curves["bands"] >= 2 and not overlapping(curves["boxes"]), curves["boxes"]
        progress = figure_with(page, "restricted loss")
        titles = [a["title"] for a in progress["axes"] if a["name"].startswith("y")]
        assert len(titles) >= 4 and all(titles), f"progress-measure subplots without axis titles: {titles}"
        assert progress["bands"] >= 2
        shoot(page, progress, "lens-grokking.png", shots)

        # -- Superposition: nothing trains until asked; the default is the paper's pentagon; a stored run opens
        page.goto(url + "/superposition")
        page.get_by_role("button", name="Train models").click()
        wait_for_points(page, lambda p: p.get("b S=0", 0) == 5 and p.get("phase", 0) == 4
                        and p.get("features S=0", 0) == 5, timeout=120)
        sparsest = next(t for t in figure_with(page, "features S=0.99")["traces"] if t["name"] == "features S=0.99")
        xy = np.stack([np.asarray(sparsest["x"], dtype=float), np.asarray(sparsest["y"], dtype=float)], axis=1)
        norms, angles = np.linalg.norm(xy, axis=1), np.sort(np.degrees(np.arctan2(xy[:, 1], xy[:, 0])))
        gaps = np.diff(np.append(angles, angles[0] + 360))
        assert norms.min() > 0.5 * norms.max() and np.allclose(gaps, 72, atol=12), (norms, gaps)  # a pentagon
        shoot(page, figure_with(page, "b S=0"), "lens-superposition.png", shots)
        page.goto(f"{url}/superposition?run={ids['toy']}")
        wait_for_points(page, lambda p: p.get("dims per feature m/‖W‖²_F", 0) == 2, timeout=60)
        assert page.get_by_text(f"run {ids['toy']}").count() >= 1

        # -- Spectrum: the ESD axes stay inside the data (no 10^297), alpha per layer drawn
        page.goto(f"{url}/spectrum")
        alpha = figure_with(page, "workbench alpha")
        esds = [f for f in figures(page) if any(t["name"] == "ESD" for t in f["traces"])]
        assert len(esds) >= 2
        for esd in esds:
            x = np.concatenate([np.asarray(t["x"], dtype=float) for t in esd["traces"] if t["name"] == "ESD"])
            xaxis = next(a for a in esd["axes"] if a["name"] == "xaxis")
            lo, hi = (10 ** np.asarray(xaxis["range"], dtype=float) if xaxis["type"] == "log"
                      else np.asarray(xaxis["range"], dtype=float))
            assert lo >= x[x > 0].min() / 100 and hi <= x.max() * 100, (xaxis, x.min(), x.max())
        shoot(page, alpha, "lens-spectrum.png", shots)

        # -- Koopman: the short run's window and rank adapt and say so; the controls fit a narrow window
        page.goto(f"{url}/koopman?run={ids['modular']}")
        eigs = figure_with(page, "unit circle", timeout=90)
        page.get_by_text("adapted to the run's").wait_for()
        n_steps = store.open(ids["modular"]).trajectory().sizes["step"]
        rank = clip_settings(n_steps, 20, 8, 1).rank  # the page's defaults, fitted to the run's length
        wait_for_points(page, lambda p: p.get("estimated", 0) == rank and p.get("|λ|", 0) >= rank, timeout=60)
        eigs = figure_with(page, "unit circle")
        shoot(page, eigs, "lens-koopman.png", shots)
        page.set_viewport_size({"width": 900, "height": 900})
        page.wait_for_timeout(500)
        inputs = page.locator("input").all()
        assert inputs and all(box["x"] + box["width"] <= 900 for i in inputs if (box := i.bounding_box()))
        page.set_viewport_size({"width": 1400, "height": 900})

        # -- Sweeps: the heatmap is the sweep's numbers; a click on a cell opens that run
        page.goto(url + "/sweeps")
        heat = next(t for t in figure_with(page, kind="heatmap")["traces"] if t["type"] == "heatmap")
        assert heat["name"] == default_variable(grid)  # steps to 95 %, or a final metric when no cell got there
        z = np.array([[np.nan if v is None else v for v in row] for row in heat["z"]], dtype=float)
        np.testing.assert_array_equal(z, grid[heat["name"]].transpose("wd", "frac").values)
        assert sorted(np.ravel(heat["customdata"])) == sorted(cells)
        box = page.locator(".nsewdrag").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.75)
        clicked = str(grid.run_id.sel(wd=0.1, frac=0.3).values)
        page.get_by_text(f"Run {clicked}").wait_for(timeout=15_000)
        wait_for_points(page, lambda p: p.get("train_acc", 0) == 13, timeout=60)
        page.close()
        time.sleep(1)  # the last page's socket closes
    context.close()
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert not outside, f"requests to the network: {sorted(set(outside))}"
    assert not [e for e in errors if "favicon" not in e], errors
    assert "WebSocketClosedError" not in log and "Traceback" not in log, log[-3000:]
    for name in ("lens-grokking.png", "lens-superposition.png", "lens-spectrum.png", "lens-koopman.png"):
        assert (shots / name).stat().st_size > 10_000, name  # a drawn figure, not a blank box

