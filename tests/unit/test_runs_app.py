"""widgets.apps.runs: the run browser's logic, without a browser."""
from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from widgets.apps.runs import (
    RunBrowser,
    config_json,
    is_live,
    page,
    pick_run,
    run_figures,
    run_table,
    status_line,
)
from widgets.plots.empty import is_empty
from workbench.store import RunStore


def metrics(steps) -> xr.Dataset:
    steps = np.asarray(steps)
    return xr.Dataset({"train_loss": ("step", 1.0 / (1 + steps)), "test_loss": ("step", 2.0 / (1 + steps)),
                       "train_acc": ("step", steps / 100.0), "test_acc": ("step", steps / 200.0)},
                      coords={"step": steps})


@pytest.fixture
def store(tmp_path):
    """Two runs: one done, one running whose writer (this test) holds its lock."""
    store = RunStore(tmp_path)
    with contextlib.ExitStack() as stack:
        for i, status in enumerate(["done", "running"]):
            run = store.create({"kind": "modular", "seed": i})
            run.append(metrics([0, 10, 20]))
            run.update_state(status=status, step=20, created=f"2026-01-0{i + 1}T00:00:00",
                             summary={"train_acc": 0.2, "test_acc": 0.1})
            if status == "running":
                stack.enter_context(store.lock(run.id))
        yield store


def ids(store: RunStore) -> dict[str, str]:
    return {r.state["status"]: r.id for r in store}


def test_run_table_columns_and_order(store):
    df = run_table(store)
    assert list(df.columns[:6]) == ["run_id", "kind", "status", "step", "seed", "train_acc"]
    assert list(df["status"]) == ["running", "done"]  # newest first
    assert df["train_acc"].tolist() == [0.2, 0.2]
    assert run_table(RunStore(store.root / "empty")).empty


def test_pick_run_prefers_current_then_running_then_newest(store):
    df = run_table(store)
    done, running = ids(store)["done"], ids(store)["running"]
    assert pick_run(df, done) == done
    assert pick_run(df, "gone") == running
    assert pick_run(df[df.status == "done"], None) == done
    assert pick_run(pd.DataFrame(columns=df.columns)) is None


def test_run_figures_config_and_status(store):
    run = store.open(ids(store)["running"])
    loss, acc = run_figures(run, log_x=True)
    np.testing.assert_array_equal(loss.data[0].x, [10, 20])
    np.testing.assert_allclose(acc.data[0].y, [0.1, 0.2])
    assert loss.layout.xaxis.type == "log"
    cfg = config_json(run)
    assert cfg["config"] == {"kind": "modular", "seed": 1} and cfg["status"] == "running"
    assert is_live(run) and "live" in status_line(run)
    assert not is_live(store.open(ids(store)["done"]))
    assert "No runs yet" in status_line(None)


def test_browser_selects_and_follows_a_live_run(store):
    b = RunBrowser(store)
    running = ids(store)["running"]
    assert b.run_id == running and b._table.selection == [0]
    assert len(b._loss.object.data[0].x) == 3
    # the training process appends steps: refresh() redraws the live run
    store.open(running).append(metrics([30, 40]))
    b.refresh()
    assert list(b._loss.object.data[0].x) == [0, 10, 20, 30, 40]
    # it finishes: one last redraw, then no more reads
    store.open(running).append(metrics([50]))
    store.open(running).update_state(status="done")
    b.refresh()
    assert len(b._loss.object.data[0].x) == 6
    before = b._loss.object
    b.refresh()
    assert b._loss.object is before


def test_browser_table_selection_log_x_and_new_runs(store):
    b = RunBrowser(store)
    done = ids(store)["done"]
    b._table.selection = [list(b._table.value["run_id"]).index(done)]
    assert b.run_id == done and b._config.object["run_id"] == done
    b.log_x = True
    assert b._acc.object.layout.xaxis.type == "log"
    new = store.create({"kind": "modular", "seed": 9})
    b.refresh()
    assert new.id in b.param.run_id.objects and b.run_id == done  # a new run does not steal the view


def test_page_and_bad_store(store, tmp_path):
    assert isinstance(page(store), RunBrowser)
    b = RunBrowser(RunStore(tmp_path / "none"))
    assert b.run_id is None and is_empty(b._loss.object) and "No runs yet" in b._status.object
    b.__panel__()
    with pytest.raises(TypeError, match="RunStore"):
        RunBrowser(str(tmp_path))


def test_a_real_training_run(tmp_path):
    from workbench.grokking.modular_run import ModularConfig, train_modular

    run = train_modular(ModularConfig(p=5, steps=20, d_embed=8, d_hidden=16, eval_every=5), RunStore(tmp_path),
                        progress=False)
    loss, acc = run_figures(run)
    ds = run.metrics()
    t = {tr.name: tr for tr in loss.data}
    np.testing.assert_allclose(t["train_loss"].y, ds.train_loss.values)
    np.testing.assert_array_equal(t["test_loss"].x, ds.step.values)
    assert {tr.name for tr in acc.data} == {"train_acc", "test_acc"}


def test_a_run_left_running_by_a_dead_process_is_not_live(tmp_path):
    store = RunStore(tmp_path)
    run = store.create({"kind": "modular", "seed": 0})
    run.append(metrics([0, 10]))
    run.update_state(status="running", step=10)  # Ctrl-C'd before it could record anything else
    df = run_table(store)
    assert df["status"].tolist() == ["stale"] and not is_live(run)
    assert "live" not in status_line(run) and "resume" in status_line(run)


def test_hyperparameter_columns_sweep_and_lens_links(tmp_path):
    from widgets.apps.run_table import hyperparameters, lens_links

    cfg = {"kind": "grokking", "task": {"p": 23, "frac": 0.3}, "train": {"p": 23, "wd": 1.0, "lr": 1e-3,
                                                                          "optimizer": "muon", "seed": 2}}
    assert hyperparameters(cfg) == {"p": 23, "frac": 0.3, "wd": 1.0, "lr": 1e-3, "optimizer": "muon", "seed": 2}
    store = RunStore(tmp_path)
    runs = [store.create({"kind": "modular", "train": {"p": 23, "wd": wd, "frac": 0.5}}) for wd in (0.1, 1.0)]
    for run in runs:
        run.append(metrics([0, 10, 20]))
    store.save_artifact("sweep", "sw1", {"sweep_id": "sw1", "task": "modular", "axes": [["wd", [0.1, 1.0]]],
                                         "points": [{"index": [0], "params": {}, "run_id": runs[0].id}]})
    df = run_table(store).set_index("run_id")
    assert {"p", "wd", "frac", "sweep"} <= set(df.columns)
    assert df.loc[runs[0].id, "sweep"] == "sw1" and df.loc[runs[1].id, "sweep"] == ""
    assert df.loc[runs[1].id, "wd"] == 1.0
    assert lens_links(store.open(runs[0].id), "sw1") == {"sweep": "./sweeps?sweep=sw1"}
    toy = store.create({"kind": "superposition", "toy": {"n_features": 5}})
    assert "superposition" in lens_links(toy)


def test_overlay_of_selected_runs_coloured_by_a_hyperparameter(tmp_path):
    store = RunStore(tmp_path)
    runs = [store.create({"kind": "modular", "train": {"wd": wd}}) for wd in (0.01, 0.1, 1.0)]
    for i, run in enumerate(runs):
        run.append(metrics([0, 10, 20 + i]))
    b = RunBrowser(store)
    assert is_empty(b._compare.object)  # one row selected: nothing to overlay yet
    b._table.selection = [0, 1, 2]  # what Ctrl-clicking three rows does
    assert sorted(b.compare) == sorted(r.id for r in runs)
    fig = b._compare.object
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 3 and all("wd=" in t.name for t in lines)
    assert len({t.line.color for t in lines}) == 3 and "wd" in fig.layout.title.text
    b.metric = "train_loss"
    assert b._compare.object.layout.yaxis.type == "log"
    b.color = "none"
    assert "coloured" not in b._compare.object.layout.title.text
