"""``workbench spectrum`` and ``workbench import checkpoints``: output, files, and failures that write nothing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

from workbench.checkpoints import find_checkpoints, import_checkpoints
from workbench.cli import app
from workbench.spectrum import analyze
from workbench.store import RunStore

runner = CliRunner()


def _model(seed: int, width: int = 48) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Embedding(100, width), nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width),
                         nn.LayerNorm(width))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def test_spectrum_command_prints_table_and_writes_files(tmp_path):
    save_file(_state(_model(0)), tmp_path / "model.safetensors")
    out = runner.invoke(app, ["spectrum", str(tmp_path), "--layers", r"^[13]$", "--out", str(tmp_path / "r.csv"),
                              "--html", str(tmp_path / "a.html"), "--bootstrap", "20", "--no-progress"])
    assert out.exit_code == 0, out.output
    for word in ("alpha", "alpha_lo", "alpha_weighted", "stable_rank", "effective_rank", "condition_number",
                 "num_spikes", "1-D tensors", "layers not selected"):
        assert word in out.output
    table = np.genfromtxt(tmp_path / "r.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert list(table["layer"]) == [1, 3] and "alpha_hi" in table.dtype.names
    assert "not selected" in (tmp_path / "r.skipped.csv").read_text()
    html = (tmp_path / "a.html").read_text()
    assert len(html) > 1_000_000 and 'src="https://cdn.plot.ly' not in html  # plotly.js inlined: works offline
    for suffix in (".nc", ".zarr"):
        assert runner.invoke(app, ["spectrum", str(tmp_path), "--out", str(tmp_path / f"r{suffix}"),
                                   "--no-progress"]).exit_code == 0
        opened = xr.open_dataset(tmp_path / f"r{suffix}", engine="scipy" if suffix == ".nc" else "zarr")
        np.testing.assert_allclose(opened.alpha.values, analyze(tmp_path).alpha.values)
        assert "skip_reason" in opened
    bad = runner.invoke(app, ["spectrum", str(tmp_path / "nothing-here")])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def _trainer_dirs(root, shapes_change: bool = False) -> list[int]:
    steps = [10, 20, 30]
    for k, step in enumerate(steps):
        d = root / f"checkpoint-{step}"
        d.mkdir(parents=True)
        width = 32 if shapes_change and step == 30 else 48
        save_file(_state(_model(k, width)), d / "model.safetensors")
        (d / "trainer_state.json").write_text("{}")
    return steps


def test_import_hf_trainer_checkpoints_into_a_run(tmp_path):
    steps = _trainer_dirs(tmp_path / "trainer")
    out = runner.invoke(app, ["import", "checkpoints", str(tmp_path / "trainer"), "--data", str(tmp_path / "runs"),
                              "--project-dim", "64", "--no-progress"])
    assert out.exit_code == 0, out.output
    run = RunStore(tmp_path / "runs").open(out.output.strip().splitlines()[-1].removeprefix("run_id: "))
    assert run.config["kind"] == "imported" and run.config["layout"] == "hf-trainer"
    spectra = run.metrics("spectrum")
    assert list(spectra.step.values) == steps and spectra.alpha.dims == ("step", "layer")
    first = analyze(tmp_path / "trainer" / "checkpoint-10")
    np.testing.assert_allclose(spectra.alpha.sel(step=10).values, first.alpha.values, rtol=1e-12)
    traj = run.trajectory()
    assert traj.sizes == {"step": 3, "param": 64} and list(traj.step.values) == steps
    assert run.state["step"] == 30 and "alpha" in run.state["summary"]


def test_import_our_layout_and_step_files(tmp_path):
    src = RunStore(tmp_path / "src").create({"model_test": 1})
    model = _model(0)
    for step in (0, 5):
        src.save_checkpoint(step, model)
    series = find_checkpoints(src.path)
    assert series.layout == "store" and series.steps == [0, 5]
    files = tmp_path / "files"
    files.mkdir()
    for step in (1, 2):
        save_file(_state(_model(step)), files / f"step-{step}.safetensors")
    run = import_checkpoints(files, RunStore(tmp_path / "dst"), project_dim=None)
    assert run.config["layout"] == "files" and run.trajectory().sizes["param"] == sum(
        v.numel() for v in _model(0).state_dict().values())


def test_mismatched_or_missing_checkpoints_write_nothing(tmp_path):
    _trainer_dirs(tmp_path / "trainer", shapes_change=True)
    store = RunStore(tmp_path / "runs")
    with pytest.raises(ValueError, match=r"checkpoint-30.*step 30.*shape .*Nothing was written"):
        import_checkpoints(tmp_path / "trainer", store)
    assert store.ids() == []
    (tmp_path / "empty").mkdir()
    out = runner.invoke(app, ["import", "checkpoints", str(tmp_path / "empty"), "--data", str(tmp_path / "runs")])
    assert out.exit_code == 2 and "no checkpoints found" in out.output
    bad = tmp_path / "nan"
    for step in (1, 2):
        state = _state(_model(step))
        if step == 2:
            state["1.weight"][0, 0] = float("nan")
        (bad / f"checkpoint-{step}").mkdir(parents=True)
        save_file(state, bad / f"checkpoint-{step}" / "model.safetensors")
    with pytest.raises(ValueError, match="layer '1'"):
        import_checkpoints(bad, store)
    assert store.ids() == []
