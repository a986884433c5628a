"""One writer per run and honest status: the writer lock, live/stale status, failure states."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import xarray as xr

from workbench import runlock
from workbench.grokking.mlp import MLP
from workbench.grokking.modular_run import ModularConfig
from workbench.store import RunLockedError, RunStore, run_id_for
from workbench.tasks.modular import ModularTask
from workbench.train import default_optimizer, fit

TASK = ModularTask(p=11, frac=0.5, seed=0)
TRAIN_ARGS = ["train", "modular", "--p", "23", "--d-embed", "16", "--d-hidden", "32", "--steps", "300",
              "--checkpoint-every", "50", "--trajectory-every", "10", "--eval-every", "10", "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", *args]


def small_fit(run, steps=40, **kw):
    model = MLP(11, d_embed=8, d_hidden=16, seed=0)
    return fit(model, TASK, default_optimizer(model, lr=3e-3), steps, run=run, eval_every=5, checkpoint_every=10,
               trajectory_every=5, progress=False, **kw)


def test_a_second_writer_in_another_thread_is_refused_naming_the_owner(tmp_path):
    store = RunStore(tmp_path)
    run = store.create({"kind": "modular", "case": "threads"})
    inside, release = threading.Event(), threading.Event()

    def blocking_probe(model, task):
        inside.set()
        release.wait(30)
        return xr.Dataset({"x": 0.0})

    first = threading.Thread(target=small_fit, args=(run,), kwargs={"probes": {"block": (blocking_probe, 1000)}})
    first.start()
    try:
        assert inside.wait(30)
        assert run.status == "running"
        with pytest.raises(RunLockedError, match=rf"run {run.id} is being trained by pid {os.getpid()}") as info:
            small_fit(run)
        assert info.value.owner["pid"] == os.getpid() and "--wait" in str(info.value)
    finally:
        release.set()
        first.join(60)
    assert run.state["status"] == "done" and run.status == "done"
    np.testing.assert_array_equal(run.metrics().step, np.arange(0, 41, 5))


def test_a_cli_training_refuses_a_run_another_process_holds_and_writes_nothing(tmp_path):
    store = RunStore(tmp_path)
    run_id = run_id_for(ModularConfig(p=23, d_embed=16, d_hidden=32, steps=300, checkpoint_every=50,
                                      trajectory_every=10, eval_every=10).to_run_config())
    with store.lock(run_id, wait=False):
        out = subprocess.run(cli(*TRAIN_ARGS, "--data", str(tmp_path)), check=False, capture_output=True, text=True, env=ENV,
                             timeout=300)
    assert out.returncode == 2
    assert f"is being trained by pid {os.getpid()}" in out.stderr and "--wait" in out.stderr
    assert sorted(p.name for p in (tmp_path / run_id).iterdir()) == [".lock"]  # no history written


def test_two_identical_trainings_at_once_end_with_one_consistent_history(tmp_path):
    """Two `workbench train` processes on one run (as the issue's tester did): one trains, the
    other refuses (or, with --wait, waits and finds the run done); the history equals a lone run's."""
    a, b = tmp_path / "twice", tmp_path / "once"
    procs = [subprocess.Popen(cli(*TRAIN_ARGS, "--data", str(a), *extra), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV) for extra in ([], [], ["--wait"])]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes[2] == 0 and set(codes[:2]) <= {0, 2}, (codes, outs)  # the waiting one always trains or finds it done
    for code, (_, err) in zip(codes, outs, strict=True):
        if code == 2:
            assert "is being trained by pid" in err
    alone = subprocess.run(cli(*TRAIN_ARGS, "--data", str(b)), check=False, capture_output=True, text=True, env=ENV, timeout=600)
    assert alone.returncode == 0
    run, ref = RunStore(a).open(RunStore(a).ids()[0]), RunStore(b).open(RunStore(b).ids()[0])
    m, r = run.metrics(), ref.metrics()
    np.testing.assert_array_equal(m.step, np.arange(0, 301, 10))  # 31 rows, unique, in order
    xr.testing.assert_identical(m.drop_attrs(), r.drop_attrs())   # bit for bit the lone run's history
    t = run.trajectory()
    np.testing.assert_array_equal(t.step, np.arange(0, 301, 10))  # 31 rows, not 44-51
    np.testing.assert_array_equal(t.values, ref.trajectory().values)
    assert run.checkpoint_steps() == [200, 250, 300] and run.status == "done"


def test_status_is_running_only_while_a_live_writer_holds_the_run(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    run = store.create({"kind": "x"})
    run.update_state(status="running")
    assert run.status == "stale" and "gone" in run.status_info()["reason"]  # never had a writer
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run.path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": runlock.socket.gethostname(),
                                                "started": "2026-01-01T00:00:00"}))
    info = run.status_info()
    assert info["status"] == "stale" and f"pid {dead.pid}" in info["reason"]
    assert info["resume"] == f"workbench train resume {run.id} --data {store.root}"
    (run.path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "x"}))
    assert run.status == "running"  # another host with a fresh heartbeat
    old = time.time() - runlock.STALE_AFTER - 5
    os.utime(run.path / ".lock", (old, old))
    assert run.status == "stale"  # another host, heartbeat older than STALE_AFTER
    with store.lock(run.id, wait=False):
        assert run.status == "running" and run.status_info()["owner"]["pid"] == os.getpid()
    assert run.status == "stale"  # the lock was released without the run being closed


def test_heartbeat_keeps_the_lock_file_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "HEARTBEAT_SECONDS", 0.05)
    store = RunStore(tmp_path)
    with store.lock("r1", wait=False):
        old = time.time() - 100
        os.utime(tmp_path / "r1" / ".lock", (old, old))
        time.sleep(0.3)
        assert runlock.owner_of(tmp_path / "r1")["heartbeat_age"] < 1.0


@pytest.mark.parametrize("exc, status", [(RuntimeError("disk full"), "failed"),
                                          (KeyboardInterrupt(), "interrupted")])
def test_an_exception_mid_training_records_why_where_and_how_to_resume(tmp_path, exc, status):
    store = RunStore(tmp_path)
    run = store.create({"kind": "modular", "case": status})

    calls = []

    def failing_probe(model, task):  # runs at steps 0 and 20: fails at step 20
        calls.append(1)
        if len(calls) == 2:
            raise exc
        return xr.Dataset({"x": 0.0})

    with pytest.raises(type(exc)):
        small_fit(run, probes={"bad": (failing_probe, 20)})
    info = run.status_info()
    assert info["status"] == status and run.state["failed_at"] == 20
    assert type(exc).__name__ in info["reason"] and "step 20" in info["reason"]
    assert info["resume"].startswith(f"workbench train resume {run.id}")
    small_fit(run)  # the lock was released: the run resumes from its checkpoint at step 20
    assert run.status == "done" and run.status_info()["reason"] == ""


def test_sigterm_marks_a_cli_training_interrupted_with_its_resume_command(tmp_path):
    args = [*TRAIN_ARGS[:9], "100000", *TRAIN_ARGS[10:]]  # --steps 100000: still training when signalled
    proc = subprocess.Popen(cli(*args, "--data", str(tmp_path)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        states = list(tmp_path.glob("*/state.json"))
        if states and json.loads(states[0].read_text()).get("step", 0) > 0:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    run = RunStore(tmp_path).open(RunStore(tmp_path).ids()[0])
    assert proc.returncode == 130 and "resume with: workbench train resume" in err
    info = run.status_info()
    assert info["status"] == "interrupted" and "SIGTERM" in info["reason"]


def test_a_run_being_trained_cannot_be_deleted(tmp_path):
    store = RunStore(tmp_path)
    run = store.create({"kind": "x"})
    held, done = threading.Event(), threading.Event()

    def train():
        with store.lock(run.id, wait=False):
            held.set()
            done.wait(30)

    holder = threading.Thread(target=train)
    holder.start()
    try:
        assert held.wait(30)
        with pytest.raises(RunLockedError, match="is being trained by"):
            store.delete(run.id)
        assert store.exists(run.id)
    finally:
        done.set()
        holder.join()
