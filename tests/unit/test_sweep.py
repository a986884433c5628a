"""sweep(): grid validation, results against sequential runs, idempotency, records, CLI."""
from __future__ import annotations

import json
import logging
import math
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from workbench.grokking.modular_run import ModularConfig, train_modular
from workbench.store import RunStore, run_id_for
from workbench.sweep import (
    TASKS,
    available_tasks,
    list_sweeps,
    load_sweep,
    parse_grid,
    parse_overrides,
    plan,
    read_record,
    run_point,
    sweep,
)

BASE = {"p": 23, "d_embed": 16, "d_hidden": 32, "lr": 1e-2, "steps": 100, "eval_every": 5, "checkpoint_every": 25,
            "trajectory_every": 0}
GRID = {"wd": [0.1, 1.0], "frac": [0.3, 0.6]}


@pytest.fixture(scope="module")
def client():
    """An in-process cluster (threads) with a TCP scheduler, so the CLI can connect by address."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def first_step_at_least(steps: np.ndarray, acc: np.ndarray, threshold: float) -> float:
    for s, a in zip(steps, acc):  # plain loop: an independent reading of the definition
        if a >= threshold:
            return float(s)
    return math.nan


def test_parse_grid_and_overrides():
    assert parse_grid(["wd=0.1,1", "op=add,sub"]) == {"wd": [0.1, 1], "op": ["add", "sub"]}
    assert parse_overrides(["p=23", "lr=1e-3", "op=mul"]) == {"p": 23, "lr": 1e-3, "op": "mul"}
    for bad in (["wd"], ["wd="], ["wd=1,1"], ["wd=1", "wd=2"]):
        with pytest.raises(ValueError):
            parse_grid(bad)


def test_plan_validates_against_the_config_before_submitting(tmp_path):
    axes, points = plan("modular", GRID, BASE)
    assert axes == GRID and len(points) == 4
    assert points[1].index == (0, 1) and points[1].params["frac"] == 0.6 and points[1].params["p"] == 23
    assert points[1].run_id == run_id_for(ModularConfig(**{**BASE, "wd": 0.1, "frac": 0.6}).to_run_config())
    with pytest.raises(ValueError, match="unknown ModularConfig parameter"):
        plan("modular", {"weight_decay": [1.0]})
    with pytest.raises(ValueError, match="both grid axes and fixed"):
        plan("modular", GRID, {"wd": 1.0})
    with pytest.raises(ValueError, match="not a valid ModularConfig"):
        plan("modular", {"p": [23, 24]})  # 24 is not prime
    with pytest.raises(ValueError, match="duplicate"):
        plan("modular", {"wd": [1, 1.0]})  # 1 == 1.0: one run, not two cells
    with pytest.raises(ValueError, match="unknown sweep task"):
        plan("nope", GRID)
    with pytest.raises(TypeError):
        plan("modular", {"wd": 1.0})
    with pytest.raises(TypeError, match="scheduler"):
        sweep("modular", GRID, base=BASE, scheduler=3, data=tmp_path)
    assert list_sweeps(tmp_path).empty  # nothing written before the arguments are checked
    assert "modular" in available_tasks() and set(available_tasks()) <= set(TASKS)


def test_sweep_matches_sequential_runs_and_is_idempotent(tmp_path, client):
    ds = sweep("modular", GRID, base=BASE, scheduler=client, data=tmp_path / "s", progress=False)
    assert ds.steps_to_test_95.dims == ("wd", "frac") and ds.sizes == {"wd": 2, "frac": 2}
    assert list(ds.wd.values) == [0.1, 1.0] and list(ds.frac.values) == [0.3, 0.6]
    assert (ds.status == "done").all() and (ds.action == "trained").all()
    # every cell equals the same config trained sequentially in this process (CPU: bit-exact)
    ref_store = RunStore(tmp_path / "ref")
    for wd in GRID["wd"]:
        for frac in GRID["frac"]:
            run = train_modular(ModularConfig(**{**BASE, "wd": wd, "frac": frac}), ref_store, progress=False)
            m = run.metrics()
            cell = ds.sel(wd=wd, frac=frac)
            assert str(cell.run_id.values) == run.id
            np.testing.assert_allclose(float(cell.final_train_acc), float(m.train_acc[-1]), rtol=0, atol=1e-12)
            np.testing.assert_allclose(float(cell.final_test_loss), float(m.test_loss[-1]), rtol=1e-12)
            for split in ("train", "test"):
                expect = first_step_at_least(m.step.values, m[f"{split}_acc"].values, 0.95)
                got = float(cell[f"steps_to_{split}_95"])
                assert (math.isnan(expect) and math.isnan(got)) or got == expect
    assert np.isfinite(ds.steps_to_train_95).any(), "lr=1e-2 should memorise p=23 within 100 steps"

    # the record lets others find the sweep; load_sweep rebuilds the same numbers from the store
    rec = read_record(tmp_path / "s", ds.sweep_id)
    assert rec["status"] == "done" and dict(rec["axes"]) == GRID and [a for a, _ in rec["axes"]] == ["wd", "frac"] and rec["base"] == BASE
    assert sorted(p["run_id"] for p in rec["points"]) == sorted(ds.run_id.values.ravel())
    assert list_sweeps(tmp_path / "s").sweep_id.tolist() == [ds.sweep_id]
    again = load_sweep(tmp_path / "s", ds.sweep_id)
    for var in ("steps_to_train_95", "steps_to_test_95", "final_test_acc"):
        np.testing.assert_array_equal(again[var].values, ds[var].values)

    # resubmitting: every point is skipped and nothing in the runs is rewritten
    store = RunStore(tmp_path / "s")
    # (the writer lock file .lock names its last holder: taking the lock to skip a run rewrites only it)
    before = {p: p.stat().st_mtime_ns for p in store.root.rglob("*")
              if p.is_file() and "artifacts" not in p.parts and p.name != ".lock"}
    ds2 = sweep("modular", GRID, base=BASE, scheduler=client, data=store, progress=False)
    assert (ds2.action == "skipped").all() and ds2.sweep_id == ds.sweep_id
    after = {p: p.stat().st_mtime_ns for p in store.root.rglob("*")
             if p.is_file() and "artifacts" not in p.parts and p.name != ".lock"}
    assert after == before
    np.testing.assert_array_equal(ds2.final_test_loss.values, ds.final_test_loss.values)


def test_concurrent_submissions_of_one_point_train_it_once(tmp_path):
    params = {**BASE, "steps": 40}
    out: list[dict] = []
    threads = [threading.Thread(target=lambda: out.append(run_point(TASKS["modular"], params, str(tmp_path))))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o["action"] for o in out) == ["skipped", "trained"]
    assert out[0]["run_id"] == out[1]["run_id"] and RunStore(tmp_path).ids() == [out[0]["run_id"]]


def test_cli_sweep_on_an_existing_scheduler(tmp_path, client):
    from workbench.cli import app

    args = ["sweep", "modular", "--grid", "wd=0.1,1.0", "--grid", "frac=0.3", "--steps", "40",
            "--set", "p=23", "--set", "d_embed=16", "--set", "d_hidden=32", "--set", "trajectory_every=0",
            "--scheduler", client.cluster.scheduler_address, "--data", str(tmp_path), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    sweep_id = result.output.strip().splitlines()[-1].removeprefix("sweep_id: ")
    ds = load_sweep(tmp_path, sweep_id)
    assert ds.sizes == {"wd": 2, "frac": 1} and (ds.status == "done").all()
    assert json.loads(ds.attrs["base"])["steps"] == 40
    bad = CliRunner().invoke(app, ["sweep", "modular", "--grid", "nope=1", "--data", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown ModularConfig parameter" in bad.output


def test_grokking_task_when_available(tmp_path, client):
    if "grokking" not in available_tasks():
        pytest.skip("workbench.grokking is not available")
    base = {"p": 23, "d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32, "steps": 20, "eval_every": 5, "probe_every": 10,
                "checkpoint_every": 10, "trajectory_every": 0, "probe_neurons": False}
    ds = sweep("grokking", {"optimizer": ["adamw", "grokfast-ema"]}, base=base, scheduler=client,
               data=tmp_path, progress=False)
    assert (ds.status == "done").all() and ds.run_id.str.startswith("grokking-").all()
    run = RunStore(tmp_path).open(str(ds.run_id.sel(optimizer="grokfast-ema").values))
    assert run.config["train"]["optimizer"] == "grokfast-ema"
    np.testing.assert_allclose(float(ds.final_test_acc.sel(optimizer="grokfast-ema")),
                               float(run.metrics().test_acc[-1]), rtol=0, atol=1e-12)


def test_superposition_task_reproduces_the_sparsity_transition(tmp_path, client):
    """Elhage et al. 2022 (n=5, m=2): dense features are not superposed (≈ 1 dimension per feature,
    fewer than 5 represented); sparse ones are (all 5 represented, well under 1 dimension each)."""
    base = {"steps": 1500, "batch_size": 256, "n_inits": 3, "lr": 3e-3}
    ds = sweep("superposition", {"sparsity": [0.0, 0.95]}, base=base, scheduler=client, data=tmp_path,
               progress=False)
    assert (ds.status == "done").all()
    dense, sparse = ds.sel(sparsity=0.0), ds.sel(sparsity=0.95)
    assert float(sparse.represented) == 5 and float(dense.represented) < 5
    assert float(dense.dims_per_feature) > 0.8 and float(sparse.dims_per_feature) < 0.5
    assert float(sparse.loss) < float(dense.loss)


def test_records_are_store_artifacts_and_old_records_still_open(tmp_path):
    store = RunStore(tmp_path)
    # a record written before the artifact area: <root>/sweeps/<id>.json
    old = {"sweep_id": "modular-sweep-old", "task": "modular", "axes": [["wd", [0.1, 1.0]]], "base": {},
           "points": [{"index": [i], "params": {"wd": w}, "run_id": f"modular-{i:012d}"} for i, w in
                      enumerate([0.1, 1.0])], "status": "done", "created": "2026-01-01T00:00:00"}
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "modular-sweep-old.json").write_text(json.dumps(old))
    assert list_sweeps(store).sweep_id.tolist() == ["modular-sweep-old"]
    ds = load_sweep(store, "modular-sweep-old")
    assert ds.status.values.tolist() == ["pending", "pending"] and ds.wd.values.tolist() == [0.1, 1.0]
    with pytest.raises(KeyError, match="known sweeps: \\['modular-sweep-old'\\]"):
        read_record(store, "nope")
    with pytest.raises(ValueError, match="invalid"):
        read_record(store, "../../etc")
