"""fit(): cadences, exact resume (in-process and after kill -9), divergence handling."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import xarray as xr

from workbench.grokking.mlp import MLP
from workbench.grokking.modular_run import ModularConfig, train_modular
from workbench.store import RunStore
from workbench.tasks.modular import ModularTask
from workbench.train import TrainingDiverged, fit

SMALL = {"p": 23, "d_embed": 16, "d_hidden": 32, "steps": 120, "eval_every": 5, "checkpoint_every": 40,
         "trajectory_every": 20, "batch_size": 64, "lr": 3e-3}


def test_modular_mlp_memorises_the_training_set(tmp_path):
    run = train_modular(ModularConfig(**{**SMALL, "steps": 300, "batch_size": None}), RunStore(tmp_path), progress=False)
    m = run.metrics()
    assert float(m.train_acc[-1]) == 1.0
    assert float(m.train_loss[-1]) < 0.25 * float(m.train_loss[0])  # wd=1 keeps it from 0
    assert run.state["status"] == "done" and run.checkpoint_steps()[-1] == 300


@pytest.mark.parametrize("stop", [37, 40, 81])
def test_interrupted_and_resumed_run_equals_uninterrupted_bit_for_bit(tmp_path, stop):
    full = train_modular(ModularConfig(**SMALL), RunStore(tmp_path / "a"), progress=False)
    store = RunStore(tmp_path / "b")
    train_modular(ModularConfig(**SMALL), store, progress=False)  # same id: interrupt by truncating state
    run = store.open(full.id)
    for step in run.checkpoint_steps():
        if step > stop:
            import shutil
            shutil.rmtree(run.path / "checkpoints" / f"step-{step:09d}")
    resumed = train_modular(ModularConfig(**SMALL), store, progress=False)
    a, b = full.metrics(), resumed.metrics()
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    np.testing.assert_array_equal(full.trajectory().values, resumed.trajectory().values)


def test_kill_9_mid_run_then_resume_matches_uninterrupted(tmp_path):
    args = ["--p", "23", "--d-embed", "16", "--d-hidden", "32", "--steps", "400", "--eval-every", "5",
            "--checkpoint-every", "25", "--batch-size", "64", "--lr", "3e-3", "--no-progress"]
    cli = [sys.executable, "-m", "workbench.cli", "train", "modular", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*cli, "--data", str(tmp_path / "a")], check=True, env=env, capture_output=True)
    proc = subprocess.Popen([*cli, "--data", str(tmp_path / "b")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(tmp_path / "b")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = store.ids()
        if runs and any(s >= 50 for s in store.open(runs[0]).checkpoint_steps()):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = store.open(store.ids()[0])
    assert run.state["status"] == "running" and run.checkpoint_steps()[-1] < 400, "kill came too late"
    out = subprocess.run([*cli, "--data", str(tmp_path / "b"), "--resume"], check=True, env=env,
                         capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == f"run_id: {run.id}"
    a, b = RunStore(tmp_path / "a").open(run.id).metrics(), run.metrics()
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


def test_probes_run_at_their_own_cadence_and_land_in_their_group(tmp_path):
    run = RunStore(tmp_path).create({"kind": "t"})
    task = ModularTask(p=11, frac=0.5)
    calls = []

    def probe(model, task):
        calls.append(model.training)
        return xr.Dataset({"embed_norm": ((), model.W_E.norm().item())})

    torch.manual_seed(0)
    fit(MLP(11, d_embed=8, d_hidden=16), task, steps=30, run=run, probes={"norms": (probe, 10)}, progress=False)
    np.testing.assert_array_equal(run.metrics("norms").step, [0, 10, 20, 30])
    assert calls == [False] * 4  # probes see the model in eval mode
    assert {"train_loss", "test_loss", "train_acc", "test_acc", "embed_norm"} <= set(run.metrics().data_vars)


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    run = RunStore(tmp_path).create({"kind": "t"})
    task = ModularTask(p=11, frac=0.5)
    torch.manual_seed(0)
    model = MLP(11, d_embed=8, d_hidden=16)
    opt = torch.optim.SGD(model.parameters(), lr=1e6)  # blows up within a few steps
    with pytest.raises(TrainingDiverged, match=r"step \d+.*Last good checkpoint: step 0"):
        fit(model, task, opt, steps=200, run=run, checkpoint_every=100, progress=False)
    assert run.state["status"] == "diverged"
    assert torch.isfinite(run.load_checkpoint()["model"]["embed.weight"]).all()
