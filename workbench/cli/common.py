"""Shared pieces of the ``workbench`` command: option types, limits, the store, errors, output."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench.store import RunStore, default_root

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Run root (default: $WORKBENCH_DATA or data/runs).")]
MAX_TOY_BATCH = 1 << 20  # samples per toy-model step: more only costs memory (4 MiB per feature)
MAX_WIDTH = 1 << 14  # layer widths: a 16384² matrix is already 1 GiB of float32
MAX_P = 2048  # modulus: p² pairs (4M) are materialised when the task is built
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from the last checkpoint.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait",
                                       help="If another process trains this run, wait for it instead of refusing.")]


def finite(value: float | None) -> float | None:
    """Option callback: refuse NaN and ±Inf (click's ranges let NaN through)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


def open_store(data: Path | None, *, create: bool = True) -> RunStore:
    """The run store at ``--data``; ``create=False`` (read-only commands) refuses a missing root."""
    return RunStore(data if data is not None else default_root(), create=create)


def fail(message: str) -> None:
    """Print ``error: message`` in red and exit 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def print_run(run) -> None:
    """The run's final summary line, then ``run_id: <id>`` last."""
    summary = run.state.get("summary", {})
    shown = ", ".join(f"{k}={v:.4g}" for k, v in summary.items() if isinstance(v, float))
    typer.echo(f"step {run.state.get('step')}: {shown}")
    typer.echo(f"run_id: {run.id}")
