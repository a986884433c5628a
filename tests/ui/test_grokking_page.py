"""The grokking page: plain page logic (the page in Chromium: ``test_tour.py``)."""
from __future__ import annotations

import pytest

from widgets.apps.grokking import (
    GrokkingPage,
    grokking_runs,
    nearest_step,
    probe_steps,
    step_figures,
    summary_line,
)
from workbench.store import RunStore

pytestmark = pytest.mark.ui

TINY = {"p": 23, "frac": 0.5, "d_model": 32, "d_head": 8, "d_mlp": 64, "steps": 150, "eval_every": 5, "probe_every": 25,
            "checkpoint_every": 100, "trajectory_every": 50}


@pytest.fixture(scope="module")
def grok_data(tmp_path_factory):
    import torch

    from workbench.grokking import GrokkingConfig, train_grokking

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("grok_ui")
    run = train_grokking(GrokkingConfig(**TINY), RunStore(root), progress=False)
    return root, run.id


def test_page_logic_without_browser(grok_data):
    root, run_id = grok_data
    store = RunStore(root)
    assert grokking_runs(store) == [run_id]
    ds = store.open(run_id).metrics()
    steps = probe_steps(ds)
    assert steps == list(range(0, 151, 25))
    assert nearest_step(steps, 61) == 50 and nearest_step(steps, None) == 150
    figs = step_figures(ds, 50)
    assert len(figs["spectrum"].data[0].x) == (23 - 1) // 2 + 1
    assert sum(figs["clusters"].data[0].y) == 64  # every neuron counted once
    assert figs["heatmap"].data[0].z.shape == (12, 12)
    page = GrokkingPage(store)
    assert page.run_id == run_id and page.step == 150
    page.step = 75
    assert "step 75" in page._status.object
    # 150 steps never grok: no phase bands, no cleanup phase; empty key frequencies are explained
    assert store.open(run_id).attrs["phases"]["phases"]["cleanup"] is None
    assert not [s for s in page._curves.object.layout.shapes if s.type == "rect"]
    assert "no Fourier circuit" in summary_line(ds.assign_attrs(key_freqs="[]"), run_id, 50, live=False)
