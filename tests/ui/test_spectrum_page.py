"""The spectra page: plain page logic, then the real page in headless Chromium."""
from __future__ import annotations

import numpy as np
import pytest

from tests.ui.plots import wait_for_points
from widgets.apps.spectrum import (
    PRETRAINED,
    SpectrumPage,
    compute_spectrum,
    load_source,
    source_steps,
    spectrum_figures,
    spectrum_sources,
    training_figures,
)
from workbench.store import RunStore

pytestmark = pytest.mark.ui


def test_page_logic_without_browser(ui_data, ui_run_id, tmp_path):
    store = RunStore(ui_data)
    assert spectrum_sources(store) == [ui_run_id, PRETRAINED]
    steps = source_steps(store, ui_run_id)
    assert steps[-1] == 200 and 100 in steps
    ds = compute_spectrum(load_source(store, ui_run_id, 100))
    assert [str(x) for x in ds.layer.values] == ["embed", "hidden", "unembed"]
    figs = spectrum_figures(ds, ["hidden"])
    esd = figs["esd:hidden"]
    n_points = sum(len(t.x) for t in esd.data if t.name == "ESD")
    assert n_points > 5
    assert list(figs["alpha"].data[0].y) == pytest.approx(ds.alpha.values.tolist())
    page = SpectrumPage(store)  # starts analysing the newest run in a thread
    page.wait()
    assert page.source == ui_run_id and page.step == 200
    assert page.layers == ["embed", "hidden"] and sum(p.visible for p in page._esds) == 2
    assert "3 layers" in page._status.object
    page.step = 100  # another checkpoint: analysed again
    page.wait()
    assert page._alpha.object.data[0].y == pytest.approx(ds.alpha.values.tolist())
    page.source = PRETRAINED  # while MiniLM is analysed, a change of step waits its turn
    page.source = ui_run_id
    page.wait()
    assert "3 layers" in page._status.object and page.step == 200
    # a run that recorded the spectrum probe also gets the over-training figures
    from workbench.grokking.mlp import MLP
    from workbench.spectrum import make_spectrum_probe
    from workbench.tasks.modular import ModularTask
    from workbench.train import fit

    own = RunStore(tmp_path / "runs")
    run = own.create({"ui_spectrum": 1})
    model = MLP(11, d_embed=8, d_hidden=16, seed=0)
    fit(model, ModularTask(p=11, frac=0.5), steps=10, run=run,
        probes={"spectrum": (make_spectrum_probe(model.state_dict()), 5)}, progress=False)
    figs = training_figures(own, run.id)
    assert set(figs) == {"alpha", "effective_rank", "delta_stable_rank"}
    assert np.array_equal(figs["alpha"].data[0].x, [0, 5, 10])


def test_spectrum_page_in_browser(server, browser_page):
    page = browser_page
    page.goto(server + "/spectrum")
    # two ESD plots (one 'ESD' trace each) and the alpha-per-layer plot with the 3 MLP layers
    points = wait_for_points(page, lambda p: p.get("ESD", 0) > 5 and p.get("workbench alpha", 0) == 3,
                             timeout=60)
    assert points["ESD"] > 5
    assert not page.errors


def test_switching_source_throws_nothing(server, browser_page, ui_run_id):
    """Switching to the pretrained model and back redraws the same panes: no plotly.js errors."""
    page = browser_page
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    page.goto(server + "/spectrum")
    wait_for_points(page, lambda p: p.get("workbench alpha", 0) == 3, timeout=60)
    source = page.locator("select").first
    source.select_option(PRETRAINED)
    wait_for_points(page, lambda p: p.get("workbench alpha", 0) > 3, timeout=90)
    holder = page.locator(".tabulator-tableholder").first  # 39 long layer names: the columns still fit
    assert holder.evaluate("h => h.scrollWidth <= h.clientWidth + 1"), "the metric table scrolls sideways"
    source.select_option(ui_run_id)
    wait_for_points(page, lambda p: p.get("workbench alpha", 0) == 3, timeout=60)
    assert not page.errors and not [m for m in console if "_guiEditing" in m], (page.errors, console)
