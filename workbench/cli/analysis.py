"""Analysis commands: ``workbench spd``, ``workbench spectrum`` and ``workbench import checkpoints``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench.cli.common import DataOpt, ProgressOpt, fail, open_store

import_app = typer.Typer(help="Bring runs made elsewhere into the run store.", no_args_is_help=True)


def spd_cmd(
    features: Annotated[int, typer.Option(help="Features of the TMS target (paper: 5 or 40).")] = 5,
    hidden: Annotated[int, typer.Option(help="Hidden dimensions of the target (paper: 2 or 10).")] = 2,
    identity: Annotated[bool, typer.Option("--identity", help="Decompose the '+ identity' target.")] = False,
    seeds: Annotated[int, typer.Option(help="Targets (one per seed), decomposed in one batch.")] = 3,
    steps: Annotated[Optional[int], typer.Option(help="SPD steps (default: the paper's 40000).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="SPD batch (default: the paper's 4096).")] = None,
    components: Annotated[Optional[int], typer.Option("--C", help="Subcomponents per matrix (paper: 20 / 200).")] = None,
    seed: int = 0,
    data: DataOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Stochastic Parameter Decomposition (Bushnaq et al. 2025) of TMS toy models; stores the result."""
    from workbench.superposition.spd_run import ARTIFACT_KIND, decompose_tms

    overrides = {k: v for k, v in (("steps", steps), ("batch_size", batch_size), ("C", components)) if v is not None}
    try:
        ds = decompose_tms(features, hidden, seeds=seeds, identity=identity, store=open_store(data),
                           progress=progress, seed=seed, **overrides)
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    typer.echo(f"artifact: {ARTIFACT_KIND}/{ds.attrs['artifact']}")
    for name in ("mmcs", "ml2r", "alive"):
        values = ds[name].values
        typer.echo(f"{name}: {values.mean():.4g} (per seed: {', '.join(f'{v:.4g}' for v in values)})")


def spectrum_cmd(
    path: Annotated[Path, typer.Argument(help="Model directory (HF, single or sharded), .safetensors, or .pt/.bin.")],
    layers: Annotated[Optional[str], typer.Option(help="Regular expression: analyse only matching layers.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the result: FILE.csv, FILE.nc or FILE.zarr.")] = None,
    html: Annotated[Optional[Path], typer.Option(help="Write the alpha-per-layer figure as self-contained HTML.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates for the 95% interval of alpha (0: none).")] = 0,
    on_nonfinite: Annotated[str, typer.Option(help="raise | skip: layers with NaN/Inf weights.")] = "raise",
    progress: ProgressOpt = True,
) -> None:
    """Weight spectra of a model on disk: per-layer alpha, ranks, conditioning, spikes; skipped tensors."""
    from workbench.spectrum import analyze, summary_table, write_result
    from workbench.spectrum.export import format_table, skipped_summary

    try:
        ds = analyze(path, layers=layers, bootstrap=bootstrap, on_nonfinite=on_nonfinite, progress=progress)
        written = write_result(ds, out) if out is not None else []
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    typer.echo(format_table(summary_table(ds)))
    typer.echo(skipped_summary(ds))
    if html is not None:
        from widgets.plots.spectrum import alpha_by_layer

        fig = alpha_by_layer(ds)
        if "alpha_lo" in ds:
            fig.data[0].error_y = {"type": "data", "array": ds.alpha_hi - ds.alpha, "arrayminus": ds.alpha - ds.alpha_lo}
        fig.write_html(html, include_plotlyjs=True)
        written.append(html)
    for f in written:
        typer.echo(f"wrote {f}")


@import_app.command("checkpoints")
def import_checkpoints_cmd(
    directory: Annotated[Path, typer.Argument(help="Folder of step-N/ (ours), checkpoint-N/ (HF Trainer) or step-N.safetensors.")],
    project_dim: Annotated[int, typer.Option(help="Trajectory sketch dimension (0: every parameter).")] = 512,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates for alpha's interval per step.")] = 0,
    data: DataOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Turn a series of checkpoints into a run: weight spectra and parameter trajectory over steps."""
    from workbench.checkpoints import import_checkpoints

    try:
        run = import_checkpoints(directory, open_store(data), project_dim=project_dim or None, bootstrap=bootstrap,
                                 progress=progress)
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    steps = run.config["steps"]
    typer.echo(f"imported {len(steps)} checkpoints (steps {steps[0]}..{steps[-1]}, {run.config['layout']} layout) "
               f"into {run.path}: metric group 'spectrum', trajectory of {run.trajectory().sizes['param']} params")
    typer.echo(f"run_id: {run.id}")
