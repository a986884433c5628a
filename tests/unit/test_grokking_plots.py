"""Grokking figure builders: phase bands only for runs that grokked, readable labels and subplots."""
from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from widgets.plots.grokking import grokking_curves, progress_measures
from workbench.grokking.phases import detect_phases


def metrics(grokked: bool) -> xr.Dataset:
    steps = np.arange(0, 2000, 10)
    fall = np.clip((steps - 800) / 400, 0, 1)
    test_loss = 5.0 - (4.9 if grokked else 1.0) * fall
    return xr.Dataset({
        "train_acc": ("step", np.clip(steps / 100, 0, 1)), "train_loss": ("step", np.exp(-steps / 200)),
        "test_loss": ("step", test_loss), "test_acc": ("step", fall if grokked else 0.44 * fall),
        "restricted_loss": ("step", test_loss * 0.5), "excluded_loss": ("step", test_loss + 1),
        "gini": ("step", fall), "weight_norm": ("step", 100 - 50 * fall), "key_freq_fraction": ("step", fall),
    }, coords={"step": steps})


def bands(fig) -> list:
    return [s for s in fig.layout.shapes if s.type == "rect"]


def test_no_phase_bands_without_grokking():
    ds = metrics(grokked=False)
    assert not bands(grokking_curves(ds, detect_phases(ds)))
    assert not bands(progress_measures(ds, phases=detect_phases(ds)))
    # a report written before detect_phases said 'grokked': judged from test_acc
    old = {"phases": {"memorization": [0, 100], "circuit_formation": [100, 900], "cleanup": [900, 1100]}}
    fig = grokking_curves(ds, old)
    assert not bands(fig) and not [a for a in fig.layout.annotations if "cleanup" in a.text]


def test_phase_names_of_a_grokked_run_do_not_overlap():
    ds = metrics(grokked=True)
    fig = grokking_curves(ds, detect_phases(ds))
    assert len(bands(fig)) == 3
    labels = [a for a in fig.layout.annotations if a.text in ("memorization", "circuit formation", "cleanup")]
    shifts = sorted(-(a.yshift or 0) for a in labels)  # stacked in pixels: apart at any figure height
    assert len(labels) == 3 and all(b - a >= 16 for a, b in itertools.pairwise(shifts)) and {a.y for a in labels} == {1}
    progress = progress_measures(ds, phases=detect_phases(ds))
    assert len([a for a in progress.layout.annotations if a.text == "cleanup"]) == 1  # once, not per subplot


def test_progress_subplots_have_axis_titles_and_their_own_legends():
    fig = progress_measures(metrics(grokked=True), step=500)
    for axis in ("xaxis", "xaxis2", "xaxis3", "xaxis4"):
        assert fig.layout[axis].title.text == "step"
    assert all(fig.layout[a].title.text for a in ("yaxis", "yaxis2", "yaxis3", "yaxis4"))
    legends = {t.legend or "legend" for t in fig.data}
    assert legends == {"legend", "legend2", "legend3", "legend4"}
    assert fig.layout.legend2.x > fig.layout.legend.x or fig.layout.legend2.y != fig.layout.legend3.y


def test_a_groups_run_opens_on_the_grokking_page_in_the_irrep_basis(tmp_path):
    """A finite-group run (probe group 'groups') is listed and drawn: energy per irrep with its key
    irreps in red, neurons by irrep concentration, the key-irrep share among the progress measures."""
    from widgets.apps.grokking import GrokkingPage, grokking_runs, probe_steps, step_figures
    from workbench.grokking.groups_run import GroupsConfig, train_groups
    from workbench.store import RunStore

    store = RunStore(tmp_path)
    run = train_groups(GroupsConfig(group="S3", steps=60, probe_every=20), store, progress=False)
    assert grokking_runs(store) == [run.id]
    ds = run.metrics()
    assert probe_steps(ds) == [0, 20, 40, 60]
    figs = step_figures(ds, 60)
    bars = figs["spectrum"].data[0]
    assert list(bars.x) == ["1 (d=1)", "1b (d=1)", "2a (d=4)"]
    np.testing.assert_allclose(bars.y, ds["irrep_energy"].sel(step=60).values)
    key = ds["is_key"].sel(step=60).values
    assert [c == "#ef553b" for c in bars.marker.color] == [bool(k) for k in key]
    assert figs["clusters"].data[0].type == "histogram"
    assert len(figs["clusters"].data[0].x) == ds.sizes["neuron"]
    assert any(t.name == "key irrep fraction" for t in figs["progress"].data)
    page = GrokkingPage(store)
    assert page.run_id == run.id
    status = page._status.object
    assert "S3: key irreps" in status or "key irreps: none yet" in status
