"""Fault tolerance of sweep(): a worker killed mid-sweep, and the whole sweep killed and rerun."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from workbench.grokking.modular_run import ModularConfig, train_modular
from workbench.store import RunStore
from workbench.sweep import plan, sweep

BASE = {"p": 23, "d_embed": 16, "d_hidden": 32, "lr": 1e-2, "steps": 100, "eval_every": 5, "checkpoint_every": 25,
            "trajectory_every": 25}
GRID = {"wd": [0.1, 1.0], "frac": [0.4, 0.6]}


@pytest.fixture(scope="module")
def client():
    """A real 2-process LocalCluster, as sweep() builds by default."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def mid_run(store: RunStore, run_id: str) -> bool:
    """The run has a checkpoint after step 0 but is not finished."""
    try:
        run = store.open(run_id)
        return run.state["status"] == "running" and any(s > 0 for s in run.checkpoint_steps())
    except (KeyError, ValueError, OSError):
        return False


def assert_intact(store: RunStore, run_id: str, reference: RunStore) -> None:
    """Finished, every checkpoint verifies, metrics and trajectory complete and = an uninterrupted run."""
    run = store.open(run_id)
    assert run.state["status"] == "done"
    for step in run.checkpoint_steps():
        assert run.load_checkpoint(step)["step"] == step  # sha256 manifest verified
    m = run.metrics()
    np.testing.assert_array_equal(m.step.values, np.arange(0, BASE["steps"] + 1, BASE["eval_every"]))
    ref = reference.open(run_id).metrics()
    for var in ("train_loss", "test_loss", "train_acc", "test_acc"):
        np.testing.assert_allclose(m[var].values, ref[var].values, rtol=1e-12, atol=0)
    traj = run.trajectory()
    np.testing.assert_array_equal(traj.step.values, np.arange(0, BASE["steps"] + 1, BASE["trajectory_every"]))


def test_killing_a_worker_mid_sweep_costs_only_its_run(tmp_path, client):
    store = RunStore(tmp_path / "sweep")
    _, points = plan("modular", GRID, BASE)
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(
        ds=sweep("modular", GRID, base=BASE, scheduler=client, data=store, progress=False)))
    thread.start()
    # wait until some run is mid-training with a checkpoint, then SIGKILL the worker running it
    wait_for(lambda: any(mid_run(store, p.run_id) for p in points), 240, "a run with a checkpoint after step 0")
    victim = next(p.run_id for p in points if mid_run(store, p.run_id))
    addr = next(a for a, keys in client.processing().items() if f"sweep-point-{victim}" in map(str, keys))
    pid = client.run(os.getpid, workers=[addr])[addr]
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive()
    ds = out["ds"]
    assert (ds.status == "done").all()
    cell = ds.where(ds.run_id == victim, drop=True)
    assert str(cell.action.values.ravel()[0]) == "resumed" and float(cell.resumed_from.max()) >= 25

    reference = RunStore(tmp_path / "reference")  # the victim, trained without interruption
    config = ModularConfig(**{**BASE, **next(p.params for p in points if p.run_id == victim)})
    train_modular(config, reference, progress=False)
    assert store.ids() == sorted(p.run_id for p in points)  # every grid point exactly once
    assert_intact(store, victim, reference)

    import torch

    assert set(client.run(torch.get_num_threads).values()) == {1}  # workers pinned to one thread


SCRIPT = """
import sys
from workbench.sweep import sweep
sweep("modular", {grid!r}, base={base!r}, data=sys.argv[1], n_workers=1, progress=False)
"""


def test_interrupted_sweep_reruns_skipping_finished_and_resuming_unfinished(tmp_path, client):
    store = RunStore(tmp_path / "sweep")
    grid = {"wd": [0.1, 1.0, 3.0]}
    _, points = plan("modular", grid, BASE)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(grid=grid, base=BASE), str(store.root)],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    def status(run_id: str) -> str:
        return store.open(run_id).state["status"] if (store.root / run_id / "config.json").exists() else "new"

    try:
        def one_done_one_mid() -> bool:
            return any(status(p.run_id) == "done" for p in points) and any(mid_run(store, p.run_id) for p in points)
        wait_for(one_done_one_mid, 240, "one finished run and one mid-run")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client, its scheduler and its worker processes
        proc.wait(timeout=30)
    finished = [p.run_id for p in points if status(p.run_id) == "done"]
    partial = {p.run_id: store.open(p.run_id).checkpoint_steps()[-1] for p in points if mid_run(store, p.run_id)}
    assert finished and partial
    mtimes = {f: f.stat().st_mtime_ns for r in finished for f in (store.root / r).rglob("*")
              if f.is_file() and f.name != ".lock"}  # the writer lock file names its last holder

    ds = sweep("modular", grid, base=BASE, scheduler=client, data=store, progress=False)
    assert (ds.status == "done").all()
    for run_id, action, resumed_from in zip(ds.run_id.values, ds.action.values, ds.resumed_from.values):
        if run_id in finished:
            assert action == "skipped"
        elif run_id in partial:
            assert action == "resumed" and resumed_from >= partial[run_id]
    assert {f: f.stat().st_mtime_ns for f in mtimes} == mtimes  # finished runs untouched

    reference = RunStore(tmp_path / "reference")
    for p in points:
        if p.run_id in partial:
            train_modular(ModularConfig(**p.params), reference, progress=False)
    assert store.ids() == sorted(p.run_id for p in points)
    for run_id in partial:
        assert_intact(store, run_id, reference)
