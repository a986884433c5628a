"""``workbench runs …`` (list, show, check, delete) and ``workbench report``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench.cli.common import DataOpt, fail, open_store
from workbench.grokking.phases import current_phases
from workbench.store import RunDamagedError, RunLockedError, RunNotFoundError

runs_app = typer.Typer(help="List, show, check and delete runs.", no_args_is_help=True)


@runs_app.command("list")
def runs_list(data: DataOpt = None) -> None:
    """Table of runs in the data root (status as it is: a run whose process is gone shows `stale`)."""
    try:
        df = open_store(data, create=False).list()
    except FileNotFoundError as exc:
        fail(str(exc))
    typer.echo("no runs yet: try `workbench demo`" if df.empty else df.to_string(index=False))
    for run_id, reason in df.attrs.get("damaged", {}).items():
        typer.secho(f"skipped damaged run {run_id}: {reason}", fg=typer.colors.YELLOW, err=True)


@runs_app.command("show")
def runs_show(run_id: str, data: DataOpt = None) -> None:
    """Config, state, status and metric variables of one run."""
    try:
        run = open_store(data, create=False).open(run_id)
        state = run.state
        attrs = state.get("attrs") or {}
        if attrs.get("phases"):  # a run stored before `grokked` was recorded: judged again, not trusted
            attrs["phases"] = current_phases(attrs["phases"], run.metrics)
        shown = {"run_id": run.id, "path": str(run.path), "status": run.status_info(), "config": run.config,
                 "state": state, "checkpoints": run.checkpoint_steps(), "metric_groups": run.groups()}
    except (ValueError, FileNotFoundError, RunNotFoundError, RunDamagedError) as exc:
        fail(str(exc))
    typer.echo(json.dumps(shown, indent=1, default=str))


@runs_app.command("check")
def runs_check(run_id: Annotated[Optional[str], typer.Argument(help="Run id (default: every run).")] = None,
               data: DataOpt = None) -> None:
    """Verify a run's files (JSON, metric checksums, checkpoints, trajectory) and say what to do.

    Exits 1 when a run is damaged, 0 when every run is intact or only has warnings."""
    from workbench.run_check import DAMAGED, OK, check_run

    try:
        store = open_store(data, create=False)
        runs = [store.open(run_id)] if run_id is not None else list(store)
    except (ValueError, FileNotFoundError, RunNotFoundError) as exc:
        fail(str(exc))
    damaged = False
    for run in runs:
        findings = check_run(run)
        worst = DAMAGED if any(f.level == DAMAGED for f in findings) else (
            "warning" if any(f.level != OK for f in findings) else OK)
        damaged |= worst == DAMAGED
        typer.echo(f"{run.id}: {worst}")
        for f in findings:
            typer.echo(f"  [{f.level}] {f.what}" + (f"\n      → {f.advice}" if f.advice else ""))
    if not runs:
        typer.echo(f"no runs in {store.root}")
    if damaged:
        raise typer.Exit(1)


@runs_app.command("delete")
def runs_delete(run_id: str, data: DataOpt = None,
                yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Delete a run directory."""
    try:
        store = open_store(data, create=False)
        store.open(run_id)
        if not yes and not typer.confirm(f"delete run {run_id}?"):
            raise typer.Exit(1)
        store.delete(run_id)
    except (ValueError, FileNotFoundError, RunNotFoundError, RunLockedError) as exc:
        fail(str(exc))
    typer.echo(f"deleted {run_id}")


def report(
    run_id: Annotated[str, typer.Argument(help="Run id (see `workbench runs list`).")],
    out: Annotated[Optional[Path], typer.Option("--out", help="HTML file to write (default: report-<run id>.html).")] = None,
    data: DataOpt = None,
) -> None:
    """Write one self-contained HTML file: the run's curves and every lens that applies (opens offline)."""
    # the view layer, imported lazily: workbench itself never imports widgets
    from widgets.report import write_report

    try:
        path, result = write_report(open_store(data, create=False), run_id, out)
    except (ValueError, TypeError, FileNotFoundError, RunNotFoundError, RunDamagedError) as exc:
        fail(str(exc))
    for lens, reason in result.skipped:
        typer.secho(f"note: the {lens} lens is not in the report: {reason}", fg=typer.colors.YELLOW, err=True)
    shown = ", ".join(s.lens for s in result.sections)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; {len(result.figures)} figures: {shown})")
