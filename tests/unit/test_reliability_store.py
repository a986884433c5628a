"""A store that survives a lost or damaged file: metric versions, checkpoints, temporaries, listing."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from workbench.cli import app
from workbench.grokking.mlp import MLP
from workbench.grokking.modular_run import ModularConfig, train_modular
from workbench.run_check import DAMAGED, check_run
from workbench.store import RunDamagedError, RunStore
from workbench.tasks.modular import ModularTask
from workbench.train import default_optimizer, fit

TASK = ModularTask(p=11, frac=0.5, seed=0)


@pytest.fixture
def run(tmp_path):
    return RunStore(tmp_path / "runs").create({"kind": "modular", "case": "store"})


def rows(steps, **values):
    return xr.Dataset({k: ("step", np.asarray(v, dtype=float)) for k, v in values.items()}, coords={"step": steps})


def three_appends(run):
    run.append(rows([0, 1], train_loss=[2.0, 1.5]))
    run.append(rows([2], train_loss=[1.0]))
    run.append(rows([3], train_loss=[0.5]))
    return run.path / "metrics.zarr" / "train"


def trained(tmp_path, name, steps=60, **kw):
    run = RunStore(tmp_path / name).create({"kind": "modular", "case": "fit"})
    model = MLP(11, d_embed=8, d_hidden=16, seed=0)
    fit(model, TASK, default_optimizer(model, lr=3e-3), steps, run=run, eval_every=5, checkpoint_every=20,
        trajectory_every=10, batch_size=16, progress=False, **kw)
    return run


def test_a_lost_head_loses_no_history_and_resume_appends_to_it(run):
    gdir = three_appends(run)
    (gdir / "HEAD").unlink()
    assert run.groups() == ["train"]  # still listed without its HEAD
    with pytest.warns(UserWarning, match="HEAD is missing"):
        np.testing.assert_allclose(run.metrics().train_loss, [2.0, 1.5, 1.0, 0.5])
    with pytest.warns(UserWarning):
        run.append(rows([4], train_loss=[0.25]))  # the next append keeps every earlier step
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # HEAD is back: no warning
        np.testing.assert_allclose(run.metrics().train_loss, [2.0, 1.5, 1.0, 0.5, 0.25])


@pytest.mark.parametrize("head", ["../../../../etc", "/etc", "v999999", "", "v00001\x00"])
def test_a_head_naming_anything_but_a_version_of_its_group_is_not_followed(run, head):
    gdir = three_appends(run)
    (gdir / "HEAD").write_text(head)
    with pytest.warns(UserWarning, match="HEAD"):
        np.testing.assert_allclose(run.metrics().train_loss, [2.0, 1.5, 1.0, 0.5])


def test_a_deleted_chunk_is_reported_and_never_read_as_nan_nor_rewritten(run):
    gdir = three_appends(run)
    head = (gdir / "HEAD").read_text()
    chunk = next(p for p in (gdir / head / "train_loss").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.unlink()
    with pytest.warns(UserWarning, match=f"version {head}: file train_loss/.* is missing"):
        m = run.metrics()
    np.testing.assert_allclose(m.train_loss, [2.0, 1.5, 1.0])  # the intact previous version, no NaN
    with pytest.warns(UserWarning):
        run.append(rows([3], train_loss=[0.4]))
    m = run.metrics()
    assert not np.isnan(m.train_loss).any()
    np.testing.assert_allclose(m.train_loss, [2.0, 1.5, 1.0, 0.4])


def test_a_changed_chunk_fails_its_checksum_and_no_intact_version_is_an_error(run):
    gdir = three_appends(run)
    for version in [p for p in gdir.iterdir() if p.is_dir()]:
        chunk = next(p for p in (version / "train_loss").rglob("*") if p.is_file() and p.name != "zarr.json")
        chunk.write_bytes(b"\0" * len(chunk.read_bytes()))
    with pytest.raises(RunDamagedError, match="no intact version of metrics group 'train'.*sha256 mismatch"):
        run.metrics()
    findings = check_run(run)
    assert any(f.level == DAMAGED and "metrics group 'train'" in f.what for f in findings)


def test_resume_falls_back_to_the_newest_verifying_checkpoint_and_equals_an_uninterrupted_run(tmp_path):
    ref = trained(tmp_path, "ref")
    run = trained(tmp_path, "damaged", steps=40)
    (run.path / "checkpoints" / "step-000000040" / "model.safetensors").write_bytes(b"garbage")
    model = MLP(11, d_embed=8, d_hidden=16, seed=0)
    with pytest.warns(UserWarning, match="skipping the checkpoint at step 40"):
        fit(model, TASK, default_optimizer(model, lr=3e-3), 60, run=run, eval_every=5, checkpoint_every=20,
            trajectory_every=10, batch_size=16, progress=False)
    xr.testing.assert_identical(run.metrics().drop_attrs(), ref.metrics().drop_attrs())
    np.testing.assert_array_equal(run.trajectory().values, ref.trajectory().values)
    assert run.checkpoint_steps() == [20, 40, 60] and all(f.level == "ok" for f in check_run(run))


def test_resume_from_a_chosen_step_replays_exactly_and_drops_later_checkpoints(tmp_path):
    config = ModularConfig(p=11, d_embed=8, d_hidden=16, steps=60, checkpoint_every=20, trajectory_every=10,
                           eval_every=5, batch_size=16)
    ref = train_modular(config, RunStore(tmp_path / "ref"), progress=False)
    run = train_modular(config, RunStore(tmp_path / "rewind"), progress=False)
    resume = ["train", "resume", run.id, "--data", str(run.store.root), "--from-step"]
    out = CliRunner().invoke(app, [*resume, "30"])
    assert out.exit_code == 2 and "no checkpoint at step 30" in out.output and "[20, 40, 60]" in out.output
    (run.path / "checkpoints" / "step-000000060" / "model.safetensors").write_bytes(b"x")  # replaced on replay
    out = CliRunner().invoke(app, [*resume, "20"])
    assert out.exit_code == 0 and out.stdout.strip().endswith(f"run_id: {run.id}")
    assert run.state["started_at"] == 20 and run.checkpoint_steps() == [20, 40, 60]
    xr.testing.assert_identical(run.metrics().drop_attrs(), ref.metrics().drop_attrs())
    np.testing.assert_array_equal(run.trajectory().values, ref.trajectory().values)
    assert all(f.level == "ok" for f in check_run(run))


def test_resume_refuses_a_run_the_cli_did_not_train(run):
    out = CliRunner().invoke(app, ["train", "resume", run.id, "--data", str(run.store.root)])
    assert out.exit_code == 2 and "was not made by `workbench train" in out.output


def test_temporaries_of_a_killed_writer_are_cleaned_when_the_next_writer_starts(run):
    gdir = three_appends(run)
    tmp_ckpt = run.path / "checkpoints" / ".tmp-step-000000010-99999"
    tmp_ckpt.mkdir(parents=True)
    (tmp_ckpt / "model.safetensors").write_bytes(b"half")
    half_version = gdir / "v000099"
    half_version.mkdir()  # a version without its manifest: the write was cut
    stray = run.path / ".state.json.tmp-99999-1"
    stray.write_text("{")
    assert any("temporary checkpoint" in f.what for f in check_run(run))
    with run.store.lock(run.id, wait=False):
        pass
    assert not tmp_ckpt.exists() and not half_version.exists() and not stray.exists()
    np.testing.assert_allclose(run.metrics().train_loss, [2.0, 1.5, 1.0, 0.5])


def test_a_damaged_run_is_skipped_and_named_by_list_check_and_the_cli(tmp_path):
    store = RunStore(tmp_path)
    good, bad = store.create({"kind": "x", "n": 1}), store.create({"kind": "x", "n": 2})
    (bad.path / "state.json").write_text('{"status": "runn')
    df = store.list()
    assert list(df.run_id) == [good.id] and bad.id in df.attrs["damaged"]
    assert "state.json" in df.attrs["damaged"][bad.id]
    out = CliRunner().invoke(app, ["runs", "list", "--data", str(tmp_path)])
    assert out.exit_code == 0 and good.id in out.stdout and f"skipped damaged run {bad.id}" in out.stderr
    out = CliRunner().invoke(app, ["runs", "check", "--data", str(tmp_path)])
    assert out.exit_code == 1 and f"{bad.id}: damaged" in out.stdout and f"{good.id}: ok" in out.stdout
    assert f"workbench runs delete {bad.id}" in out.stdout
    with pytest.raises(RunDamagedError, match=f"run {bad.id}: state.json .*workbench runs check"):
        _ = bad.state


def test_runs_check_says_what_to_do_for_each_kind_of_damage(tmp_path):
    run = trained(tmp_path, "check", steps=40)
    (run.path / "checkpoints" / "step-000000040" / "state.json").write_text("{}")
    (run.path / "metrics.zarr" / "train" / "HEAD").unlink()
    state = json.loads((run.path / "state.json").read_text())
    (run.path / "state.json").write_text(json.dumps({**state, "status": "running"}))
    out = CliRunner().invoke(app, ["runs", "check", run.id, "--data", str(run.store.root)])
    assert out.exit_code == 0, out.output  # warnings only: the run is recoverable
    text = out.stdout
    assert "checkpoint at step 40 fails verification" in text and "falls back" in text
    assert "HEAD is missing" in text and f"workbench train resume {run.id}" in text
    assert "recorded as running" in text and "trajectory: 5 rows" in text


def test_a_lost_trajectory_chunk_raises_instead_of_reading_zeros(run, monkeypatch):
    import workbench.traj_file as store_module

    monkeypatch.setattr(store_module, "TRAJ_CHUNK_PARAMS", 4)
    for step in range(3):
        run.append_trajectory(step * 10, np.arange(10, dtype=np.float32) + step)
    np.testing.assert_array_equal(run.trajectory().values[2], np.arange(10) + 2)  # intact: reads and verifies
    chunk = run.path / "traj.zarr" / "values" / "c" / "1" / "1"  # row 1 (step 10), params 4..7
    assert chunk.is_file()
    chunk.unlink()
    traj = run.trajectory()  # lazy: nothing read yet
    np.testing.assert_array_equal(traj.isel(param=slice(0, 4)).values[1], np.arange(4) + 1)  # other chunks fine
    with pytest.raises(RunDamagedError, match=r"trajectory rows at steps \[10\] \(params 4\.\.7\) are missing"):
        _ = traj.values
    assert any(f.level == DAMAGED and "trajectory" in f.what for f in check_run(run))
    (run.path / "traj.zarr" / "step" / "c" / "0").unlink()  # the steps chunk: every step would read 0
    with pytest.raises(RunDamagedError, match="trajectory steps are out of order or lost"):
        run.trajectory()
