"""Recorder: a hand-written loop records what fit records, resumes exactly, and does no I/O without a run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr

from workbench.grokking.mlp import MLP
from workbench.record import Recorder, TrainingDiverged
from workbench.store import RunStore
from workbench.tasks.modular import ModularTask
from workbench.train import default_optimizer, evaluate, fit

TASK = ModularTask(p=11, frac=0.5)
STEPS, BATCH = 30, 16
CADENCE = {"checkpoint_every": 10, "trajectory_every": 5}


def norm_probe(model, task):
    return xr.Dataset({"embed_norm": ((), model.W_E.norm().item())})


class Interrupted(Exception):
    """Stands in for a kill: the loop stops between checkpoints."""


def hand_loop(run, stop_at: int | None = None) -> xr.Dataset:
    """fit's mini-batch loop written out by hand: the same model, batches, metrics and cadences."""
    model = MLP(11, d_embed=8, d_hidden=16, seed=0)
    opt = default_optimizer(model, lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    rec = Recorder(run, model, opt, probes={"norms": (norm_probe, 10)}, probe_input=TASK,
                   state={"data": gen}, **CADENCE)
    with rec:
        for step in range(rec.resume(), STEPS + 1):
            rec.step(step, final=step == STEPS)  # before drawing: a checkpoint holds the generator now
            if step == stop_at:
                raise Interrupted
            if step == STEPS:
                break
            idx = torch.randint(len(TASK.train_x), (BATCH,), generator=gen)
            loss = F.cross_entropy(model(TASK.train_x[idx]).double(), TASK.train_y[idx])
            rec.check(step, loss)
            if step % 5 == 0:
                train_loss, train_acc = evaluate(model, TASK.train_x, TASK.train_y)
                test_loss, test_acc = evaluate(model, TASK.test_x, TASK.test_y)
                rec.log(step, train_loss=train_loss, test_loss=test_loss, train_acc=train_acc,
                        test_acc=test_acc, lr=opt.param_groups[0]["lr"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return rec.history()


def test_hand_written_loop_records_what_fit_records(tmp_path):
    store = RunStore(tmp_path)
    by_hand, by_fit = store.create({"kind": "hand"}), store.create({"kind": "fit"})
    hand_loop(by_hand)
    model = MLP(11, d_embed=8, d_hidden=16, seed=0)
    fit(model, TASK, default_optimizer(model, lr=3e-3), STEPS, run=by_fit, probes={"norms": (norm_probe, 10)},
        eval_every=5, batch_size=BATCH, progress=False, **CADENCE)
    # fit also logs the final step (30); the hand loop's last row is step 25
    xr.testing.assert_identical(by_hand.metrics().drop_attrs(),
                                by_fit.metrics().drop_attrs().sel(step=slice(0, 25)).dropna("step", how="all")
                                .combine_first(by_fit.metrics("norms").drop_attrs()))
    np.testing.assert_array_equal(by_hand.trajectory().values, by_fit.trajectory().values)
    assert by_hand.checkpoint_steps() == by_fit.checkpoint_steps() == [10, 20, 30]
    for step in by_hand.checkpoint_steps():
        a, b = by_hand.load_checkpoint(step), by_fit.load_checkpoint(step)
        for name, value in a["model"].items():
            assert torch.equal(value, b["model"][name]), (step, name)
    assert by_hand.state["status"] == by_fit.state["status"] == "done"


@pytest.mark.parametrize("stop_at", [12, 20])
def test_kill_and_resume_of_a_hand_written_loop_is_exact(tmp_path, stop_at):
    store = RunStore(tmp_path)
    straight, resumed = store.create({"case": "straight"}), store.create({"case": "resumed"})
    hand_loop(straight)
    with pytest.raises(Interrupted):
        hand_loop(resumed, stop_at=stop_at)
    assert resumed.state["status"] == "failed" and "Interrupted" in resumed.state["reason"]
    hand_loop(resumed)  # a fresh model, optimizer and generator: all restored from the checkpoint
    xr.testing.assert_identical(straight.metrics().drop_attrs(), resumed.metrics().drop_attrs())
    np.testing.assert_array_equal(straight.trajectory().values, resumed.trajectory().values)
    np.testing.assert_array_equal(straight.trajectory().step, resumed.trajectory().step)


def test_without_a_run_nothing_is_written_and_no_probe_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    calls = []
    model = MLP(11, d_embed=8, d_hidden=16, seed=0)
    rec = Recorder(None, model, probes={"n": (lambda m, t: calls.append(1), 1)}, **CADENCE)
    with rec:
        assert rec.resume() == 0
        for step in range(12):
            rec.step(step)
            rec.log(step, train_loss=torch.tensor(1.0 / (step + 1)))
        rec.save_checkpoint(12)
    assert list(tmp_path.iterdir()) == [] and calls == []
    np.testing.assert_allclose(rec.history().train_loss, 1.0 / np.arange(1, 13))
    with pytest.raises(TrainingDiverged, match="No checkpoint was kept"):
        rec.check(3, float("inf"))


def test_divergence_marks_the_run_and_names_the_last_checkpoint(tmp_path):
    run = RunStore(tmp_path).create({"kind": "t"})
    model = torch.nn.Linear(2, 1)
    rec = Recorder(run, model, checkpoint_every=5)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 7.*Last good checkpoint: step 5"), rec:
        for step in range(rec.resume(), 10):
            rec.step(step)
            rec.check(step, float("nan") if step == 7 else 1.0)
            rec.log(step, train_loss=1.0)
    assert run.state["status"] == "diverged" and run.state["diverged_at"] == 7
    np.testing.assert_array_equal(run.metrics().step, np.arange(7))


def test_log_merges_rows_of_one_step_even_across_a_flush(tmp_path):
    run = RunStore(tmp_path).create({"kind": "t"})
    rec = Recorder(run, torch.nn.Linear(2, 1))
    rec.begin()
    rec.log(0, train_loss=1.0)
    rec.log(1, train_loss=0.5)
    rec.flush()
    rec.log(1, test_loss=0.7)  # an evaluation at the same step
    rec.close()
    m = run.metrics()
    np.testing.assert_array_equal(m.train_loss, [1.0, 0.5])
    np.testing.assert_array_equal(m.test_loss, [np.nan, 0.7])
    assert run.state["summary"] == {"train_loss": 0.5, "test_loss": 0.7} and run.state["status"] == "done"


def test_bad_input_is_refused_early(tmp_path):
    model = torch.nn.Linear(2, 1)
    run = RunStore(tmp_path).create({"kind": "t"})
    with pytest.raises(TypeError, match="run must be"):
        Recorder("runs/x", model)
    with pytest.raises(TypeError, match="model must be"):
        Recorder(None, object())
    with pytest.raises(ValueError, match="every must be a positive int"):
        Recorder(None, model, probes={"p": (norm_probe, 0)})
    with pytest.raises(ValueError, match="reserved"):
        Recorder(None, model, probes={"train": (norm_probe, 1)})
    with pytest.raises(TypeError, match="state_dict"):
        Recorder(None, model, state={"x": 3})
    with pytest.raises(ValueError, match="trajectory_every"):
        Recorder(None, model, trajectory_every=-1)
    rec = Recorder(run, model, probes={"bad": (lambda m, t: {"x": 1}, 1)})
    with pytest.raises(TypeError, match="xr.Dataset"):
        rec.step(0)
    with pytest.raises(ValueError, match="scalar"):
        rec.log(0, w=torch.ones(3))
    with pytest.raises(TypeError, match="real number"):
        rec.log(0, w="high")
    Recorder(run, model, state={"g": torch.Generator()}).save_checkpoint(0)
    with pytest.raises(ValueError, match=r"holds no state for \['data'\]"):
        Recorder(run, model, state={"data": torch.Generator()}).resume()


def test_a_second_call_at_one_step_does_only_what_the_first_did_not(tmp_path):
    run = RunStore(tmp_path).create({"kind": "t"})
    model = MLP(11, d_embed=8, d_hidden=16, seed=0)
    calls = []

    def probe(m, t):
        calls.append(1)
        return norm_probe(m, t)

    rec = Recorder(run, model, probes={"n": (probe, 10)}, **CADENCE)
    rec.begin()
    for _ in range(2):
        rec.step(10)
    rec.step(10, final=True)  # e.g. a framework's "train end" right after its last "step end"
    rec.step(13, final=True)  # the final step runs the probes and a checkpoint off their cadence
    rec.close()
    assert len(calls) == 2 and run.checkpoint_steps() == [10, 13]
    np.testing.assert_array_equal(run.metrics("n").step, [10, 13])
    np.testing.assert_array_equal(run.trajectory().step, [10])
