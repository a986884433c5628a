"""The ``workbench`` command (``workbench --help``; ``--help`` on each).

One module per group of commands: :mod:`~workbench.cli.train` (train …, sweep),
:mod:`~workbench.cli.runs` (runs …, report), :mod:`~workbench.cli.analysis` (spd, spectrum,
import checkpoints); option types, limits and output in :mod:`~workbench.cli.common`, training under
the writer lock in :mod:`~workbench.cli.guard`. The top layer: it may import every lens and ``widgets``.
"""
from __future__ import annotations

from typing import Annotated, Optional

import torch
import typer

from workbench.cli import analysis, runs, train
from workbench.cli.common import MAX_P, MAX_WIDTH, DataOpt, ProgressOpt, WaitOpt, fail, open_store
from workbench.cli.guard import train_guarded

__all__ = ["MAX_P", "MAX_WIDTH", "app", "main"]

app = typer.Typer(help="Study how neural networks learn: grokking, superposition, weight spectra, Koopman spectra.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(train.train_app, name="train")
app.add_typer(runs.runs_app, name="runs")
app.add_typer(analysis.import_app, name="import")
app.command("sweep")(train.sweep_cmd)
app.command("report")(runs.report)
app.command("spd")(analysis.spd_cmd)
app.command("spectrum")(analysis.spectrum_cmd)


@app.command()
def serve(
    data: DataOpt = None,
    port: Annotated[int, typer.Option(help="Port (0 = any free port).", min=0, max=65535)] = 5006,
    host: Annotated[str, typer.Option(help="Interface to bind; keep 127.0.0.1 unless you mean to expose it.")] = "127.0.0.1",
    show: Annotated[bool, typer.Option("--show/--no-show", help="Open a browser tab.")] = False,
    token: Annotated[Optional[str], typer.Option(
        help="Login token (password) for the dashboard; default $WORKBENCH_TOKEN, or a random one "
             "printed at start whenever --host is not the loopback.")] = None,
) -> None:
    """Serve the dashboard (run browser + one page per lens) on http://HOST:PORT."""
    from widgets.serve import dashboard_token, serve_dashboard

    try:
        token = dashboard_token(host, token)
    except ValueError as exc:
        fail(str(exc))
    serve_dashboard(open_store(data), port=port, host=host, show=show, token=token)


@app.command()
def demo(data: DataOpt = None, steps: Annotated[int, typer.Option(min=1)] = 2500, wait: WaitOpt = False,
         progress: ProgressOpt = True) -> None:
    """Train the embedded default run (MLP on a+b mod 97) and print a summary."""
    from workbench.grokking.modular_run import ModularConfig, train_modular

    config = ModularConfig(steps=steps)
    store = open_store(data)
    typer.echo(f"training {config.to_run_config()['model']} on a+b mod {config.p} "
               f"({config.frac:.0%} of pairs for training) for {steps} steps into {store.root}")
    run = train_guarded(store, config.to_run_config(), wait, lambda: train_modular(config, store, progress=progress))
    m = run.metrics()
    full = m.step.where(m.train_acc >= 1.0, drop=True)
    grok = m.step.where(m.test_acc >= 0.95, drop=True)
    typer.echo(f"train accuracy {float(m.train_acc[-1]):.3f}, test accuracy {float(m.test_acc[-1]):.3f}")
    typer.echo(f"100% train accuracy first at step {int(full[0]) if full.size else 'never'}; "
               + (f"95% test accuracy (grokking) first at step {int(grok[0])}" if grok.size
                  else "95% test accuracy not reached within the run"))
    typer.echo(f"checkpoints at steps {run.checkpoint_steps()} in {run.path}")
    typer.echo(f"open the dashboard: workbench serve --data {store.root}   (or: make serve)")
    typer.echo(f"run_id: {run.id}")


def main() -> None:  # pragma: no cover - console entry point
    """Run the command with subnormal floats flushed to zero on every thread: set before torch starts
    its thread pool, so the pool inherits it (:func:`workbench.parallel.flush_denormals`)."""
    torch.set_flush_denormal(True)
    app()
