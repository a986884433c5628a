"""The workbench command: help everywhere, clear errors for bad hyperparameters, runs commands."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from workbench.cli import app

runner = CliRunner()


@pytest.mark.parametrize("cmd", [[], ["train"], ["train", "modular"], ["runs"], ["runs", "list"], ["serve"], ["demo"]])
def test_help_on_every_command(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


@pytest.mark.parametrize("args, message", [
    (["--p", "12"], "p must be a prime number, got 12"),
    (["--frac", "1.0"], "frac must be < 1.0"),
    (["--frac", "0"], "frac must be > 0.0"),
    (["--lr", "-0.1"], "lr must be > 0.0"),
    (["--op", "pow"], "op must be one of"),
])
def test_invalid_hyperparameters_fail_clearly(tmp_path, args, message):
    result = runner.invoke(app, ["train", "modular", *args, "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output
    assert not list(tmp_path.iterdir()), "a rejected config must not create a run"


def test_train_prints_run_id_last_and_runs_commands_work(tmp_path):
    result = runner.invoke(app, ["train", "modular", "--p", "11", "--steps", "20", "--d-embed", "8",
                                 "--d-hidden", "16", "--data", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    run_id = result.output.strip().splitlines()[-1].removeprefix("run_id: ")
    listed = runner.invoke(app, ["runs", "list", "--data", str(tmp_path)])
    assert run_id in listed.output and "done" in listed.output
    shown = runner.invoke(app, ["runs", "show", run_id, "--data", str(tmp_path)])
    assert '"p": 11' in shown.output and "metric_groups" in shown.output
    bad = runner.invoke(app, ["runs", "show", "../../etc", "--data", str(tmp_path)])
    assert bad.exit_code == 2 and "invalid run id" in bad.output
    missing = runner.invoke(app, ["runs", "show", "modular-123", "--data", str(tmp_path)])
    assert missing.exit_code == 2 and "workbench runs list" in missing.output
    assert runner.invoke(app, ["runs", "delete", run_id, "--yes", "--data", str(tmp_path)]).exit_code == 0
    assert "no runs yet" in runner.invoke(app, ["runs", "list", "--data", str(tmp_path)]).output


def test_train_superposition_grid_reproduces_dense_vs_sparse(tmp_path):
    """Elhage et al. 2022: dense features → the top m=2 of n=5 get dedicated dimensions; sparse → all 5 in superposition."""
    result = runner.invoke(app, ["train", "superposition", "--sparsity", "0,0.99", "--steps", "3000", "--inits", "3",
                                 "--batch-size", "512", "--lr", "3e-3", "--data", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "represented features 2/5" in lines[0]
    assert "represented features 5/5" in lines[1]
    run_id = lines[-1].removeprefix("run_id: ")
    from workbench.store import RunStore
    run = RunStore(tmp_path).open(run_id)
    W = run.metrics("toy").W
    assert W.sizes["instance"] == 6 and W.sizes["hidden"] == 2 and W.sizes["feature"] == 5
    bad = runner.invoke(app, ["train", "superposition", "--sparsity", "0,1.5", "--data", str(tmp_path)])
    assert bad.exit_code == 2 and "sparsity must be < 1.0" in bad.output


def test_main_flushes_subnormals_before_the_command_runs(monkeypatch):
    """The console entry point sets it before torch's thread pool starts, so every thread inherits it."""
    import sys

    import torch

    from workbench.cli import main
    from workbench.parallel import flushing_denormals

    monkeypatch.setattr(sys, "argv", ["workbench", "--help"])
    try:
        with pytest.raises(SystemExit):
            main()
        assert flushing_denormals()
    finally:
        torch.set_flush_denormal(False)
