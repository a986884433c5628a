"""RunStore: ids, path safety, metrics appends, trajectories, verified checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from workbench.grokking.mlp import MLP
from workbench.store import CheckpointError, RunNotFoundError, RunStore, run_id_for


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


@pytest.fixture
def run(store):
    return store.create({"kind": "modular", "model": {"name": "mlp", "p": 7, "d_embed": 8, "d_hidden": 16}})


def rows(steps, **values):
    return xr.Dataset({k: ("step", np.asarray(v, dtype=float)) for k, v in values.items()}, coords={"step": steps})


def test_run_id_is_content_derived_and_create_is_idempotent(store):
    a = store.create({"kind": "x", "lr": 1e-3})
    assert a.id == run_id_for({"lr": 1e-3, "kind": "x"})  # key order does not matter
    assert store.create({"kind": "x", "lr": 1e-3}).id == a.id
    assert store.create({"kind": "x", "lr": 2e-3}).id != a.id
    assert a.id.startswith("x-") and len(a.id) == 14
    assert list(store.list().run_id) == sorted([a.id, run_id_for({"kind": "x", "lr": 2e-3})])


@pytest.mark.parametrize("bad", ["../../etc", "/etc/passwd", "..", "a/b", "", "run id", "~root"])
def test_ids_outside_the_root_are_refused(store, bad):
    with pytest.raises(ValueError, match="invalid run id"):
        store.open(bad)


def test_unknown_run_lists_how_to_see_runs(store, run):
    with pytest.raises(RunNotFoundError, match="workbench runs list") as info:
        store.open("modular-000000000000")
    assert run.id in str(info.value)


def test_metrics_groups_merge_on_step_and_replace_repeated_steps(run):
    run.append(rows([0, 1], train_loss=[2.0, 1.5]))
    run.append(rows([1, 2], train_loss=[1.4, 1.0]))  # step 1 is rewritten, not duplicated
    run.append(rows([0, 2], gini=[0.1, 0.3]), group="fourier")
    run.set_attrs({"key_freqs": [4, 17]})
    m = run.metrics()
    np.testing.assert_array_equal(m.step, [0, 1, 2])
    np.testing.assert_allclose(m.train_loss, [2.0, 1.4, 1.0])
    assert np.isnan(m.gini.sel(step=1)) and float(m.gini.sel(step=2)) == 0.3
    assert json.loads(m.attrs["key_freqs"]) == [4, 17]
    assert set(run.metrics("fourier").data_vars) == {"gini"}


def test_truncated_append_keeps_earlier_steps_readable(run):
    run.append(rows([0, 1], train_loss=[2.0, 1.5]))
    run.append(rows([2], train_loss=[1.0]))
    gdir = run.path / "metrics.zarr" / "train"
    head = (gdir / "HEAD").read_text()
    # a crash mid-append: the new version is half-written and HEAD already points at it
    broken = gdir / f"v{int(head[1:]) + 1:06d}"
    broken.mkdir()
    (broken / "zarr.json").write_text('{"truncated')
    (gdir / "HEAD").write_text(broken.name)
    with pytest.warns(UserWarning, match="unreadable"):
        m = run.metrics()
    np.testing.assert_allclose(m.train_loss, [2.0, 1.5, 1.0])


def test_trajectory_rows_and_uncommitted_rows_are_invisible(run):
    for step in range(3):
        run.append_trajectory(step * 10, torch.full((5,), float(step)))
    traj = run.trajectory()
    assert traj.dims == ("step", "param") and traj.shape == (3, 5)
    np.testing.assert_array_equal(traj.step, [0, 10, 20])
    (run.path / "traj.zarr" / "COMMITTED").write_text("2")  # as if the last row's commit never landed
    assert run.trajectory().shape == (2, 5)
    run.append_trajectory(20, torch.full((5,), 9.0))  # the next append overwrites the orphan row
    np.testing.assert_allclose(run.trajectory().values[-1], 9.0)


def test_trajectory_append_survives_a_kill_between_the_two_resizes(run):
    import zarr

    for step in range(2):
        run.append_trajectory(step * 10, torch.full((5,), float(step)))
    # killed after the values array grew for row 2 but before the step array did
    zarr.open_group(run.path / "traj.zarr", mode="r+")["values"].resize((3, 5))
    run.append_trajectory(20, torch.full((5,), 2.0))
    traj = run.trajectory()
    np.testing.assert_array_equal(traj.step, [0, 10, 20])
    np.testing.assert_allclose(traj.values[:, 0], [0.0, 1.0, 2.0])


def test_truncate_ignores_half_written_trajectory_rows(run):
    import zarr

    for step in (0, 25):
        run.append_trajectory(step, torch.full((5,), float(step)))
    # killed mid-append at step 50: both arrays grew (the new step still the fill value 0), no commit
    g = zarr.open_group(run.path / "traj.zarr", mode="r+")
    g["values"].resize((3, 5))
    g["step"].resize((3,))
    run.truncate(24)  # resume from a checkpoint at step 25
    np.testing.assert_array_equal(run.trajectory().step, [0])
    run.append_trajectory(25, torch.full((5,), 25.0))
    np.testing.assert_array_equal(run.trajectory().step, [0, 25])


def test_trajectory_is_lazy_and_stored_in_parameter_chunks(run, monkeypatch):
    import workbench.traj_file as store_module

    monkeypatch.setattr(store_module, "TRAJ_CHUNK_PARAMS", 4)
    rows = np.arange(30, dtype=np.float32).reshape(3, 10)
    for step, row in enumerate(rows):
        run.append_trajectory(step, row)
    traj = run.trajectory()
    assert traj.chunks is not None and traj.chunks[1] == (4, 4, 2)  # dask-backed: nothing read yet
    np.testing.assert_array_equal(traj.isel(param=slice(4, 8)).values, rows[:, 4:8])
    np.testing.assert_array_equal(traj.values, rows)


def _checkpointed(run):
    torch.manual_seed(0)
    model = MLP(7, d_embed=8, d_hidden=16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.zeros(4, 3, dtype=torch.long)).sum().backward()
    opt.step()
    run.save_checkpoint(10, model, opt, {"generator": torch.Generator().manual_seed(3).get_state(), "note": "x"})
    return model, opt


def test_checkpoint_roundtrip_restores_model_optimizer_and_extra(run):
    model, opt = _checkpointed(run)
    loaded = run.load_checkpoint()
    assert loaded["step"] == 10 and loaded["extra"]["note"] == "x"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded["model"][k], v, rtol=0, atol=0)
    opt2 = torch.optim.AdamW(MLP(7, d_embed=8, d_hidden=16).parameters(), lr=1e-2)
    opt2.load_state_dict(loaded["optimizer"])
    torch.testing.assert_close(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    rebuilt = run.load_model()
    torch.testing.assert_close(rebuilt.embed.weight, model.embed.weight)


@pytest.mark.parametrize("victim", ["model.safetensors", "optimizer.safetensors", "state.json"])
def test_tampered_checkpoint_is_refused_naming_the_file(run, victim):
    _checkpointed(run)
    path = run.path / "checkpoints" / "step-000000010" / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{victim}.*sha256"):
        run.load_checkpoint()
    with pytest.raises(CheckpointError):
        run.load_model()


def test_missing_checkpoint_and_unknown_step_are_clear(run):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run.load_checkpoint()
    _checkpointed(run)
    with pytest.raises(CheckpointError, match=r"available: \[10\]"):
        run.load_checkpoint(step=5)


def test_create_rejects_non_json_config(store):
    with pytest.raises(TypeError):
        store.create({"kind": "x", "fn": object()})
    with pytest.raises(TypeError):
        store.create({})
