"""The ``workbench`` command: train, runs, serve, demo (``workbench --help``; ``--help`` on each)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench.store import RunNotFoundError, RunStore, default_root

app = typer.Typer(help="Study how neural networks learn: grokking, superposition, weight spectra, Koopman spectra.",
                  no_args_is_help=True, add_completion=False)
train_app = typer.Typer(help="Train a run into the run store (prints `run_id: <id>` last).", no_args_is_help=True)
runs_app = typer.Typer(help="List, show and delete runs.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(runs_app, name="runs")

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Run root (default: $WORKBENCH_DATA or data/runs).")]
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from the last checkpoint.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]


def _store(data: Path | None) -> RunStore:
    return RunStore(data if data is not None else default_root())


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _report(run) -> None:
    summary = run.state.get("summary", {})
    shown = ", ".join(f"{k}={v:.4g}" for k, v in summary.items() if isinstance(v, float))
    typer.echo(f"step {run.state.get('step')}: {shown}")
    typer.echo(f"run_id: {run.id}")


@train_app.command("modular")
def train_modular_cmd(
    p: Annotated[int, typer.Option(help="Prime modulus.")] = 97,
    op: Annotated[str, typer.Option(help="add | sub | mul | div | x2xyy2")] = "add",
    frac: Annotated[float, typer.Option(help="Train fraction in (0, 1).")] = 0.5,
    d_embed: int = 128,
    d_hidden: int = 256,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    wd: Annotated[float, typer.Option(help="AdamW weight decay.")] = 1.0,
    steps: int = 2000,
    batch_size: Annotated[Optional[int], typer.Option(help="Mini-batch size (default: full batch).")] = None,
    seed: int = 0,
    eval_every: int = 10,
    checkpoint_every: int = 500,
    trajectory_every: int = 50,
    data: DataOpt = None,
    resume: ResumeOpt = True,
    progress: ProgressOpt = True,
) -> None:
    """Train the embedding-concat MLP on a modular arithmetic task."""
    from workbench.grokking.modular_run import ModularConfig, train_modular
    from workbench.train import TrainingDiverged

    try:
        config = ModularConfig(p=p, op=op, frac=frac, d_embed=d_embed, d_hidden=d_hidden, lr=lr, wd=wd,
                               steps=steps, batch_size=batch_size, seed=seed, eval_every=eval_every,
                               checkpoint_every=checkpoint_every, trajectory_every=trajectory_every)
        run = train_modular(config, _store(data), resume=resume, progress=progress)
    except (ValueError, TrainingDiverged) as exc:
        _fail(str(exc))
    _report(run)


# -- lens commands are registered below this line ---------------------------------------------


@train_app.command("grokking")
def train_grokking_cmd(
    p: Annotated[int, typer.Option(help="Prime modulus.")] = 113,
    op: Annotated[str, typer.Option(help="add | sub | mul | div | x2xyy2")] = "add",
    frac: Annotated[float, typer.Option(help="Train fraction in (0, 1).")] = 0.3,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    wd: Annotated[float, typer.Option(help="AdamW weight decay.")] = 1.0,
    steps: int = 40_000,
    optimizer: Annotated[str, typer.Option(help="adamw | grokfast-ema | grokfast-ma | muon")] = "adamw",
    muon_lr: Annotated[float, typer.Option(help="Muon learning rate (hidden matrices).")] = 0.02,
    muon_wd: Annotated[float, typer.Option(help="Muon weight decay.")] = 0.05,
    gf_alpha: Annotated[float, typer.Option(help="Grokfast EMA momentum.")] = 0.98,
    gf_lamb: Annotated[Optional[float], typer.Option(help="Grokfast lambda (default 2 EMA / 5 MA).")] = None,
    gf_window: Annotated[int, typer.Option(help="Grokfast MA window.")] = 100,
    d_model: int = 128,
    d_mlp: int = 512,
    batch_size: Annotated[Optional[int], typer.Option(help="Mini-batch size (default: full batch).")] = None,
    seed: int = 0,
    eval_every: int = 10,
    probe_every: Annotated[int, typer.Option(help="Fourier progress measures every N steps.")] = 100,
    checkpoint_every: int = 1000,
    trajectory_every: int = 100,
    data: DataOpt = None,
    resume: ResumeOpt = True,
    progress: ProgressOpt = True,
) -> None:
    """Train Nanda et al.'s one-layer transformer with the grokking progress measures."""
    from workbench.grokking import GrokkingConfig, train_grokking
    from workbench.train import TrainingDiverged

    try:
        config = GrokkingConfig(p=p, op=op, frac=frac, lr=lr, wd=wd, steps=steps, optimizer=optimizer,
                                muon_lr=muon_lr, muon_wd=muon_wd,
                                gf_alpha=gf_alpha, gf_lamb=gf_lamb, gf_window=gf_window, d_model=d_model,
                                d_mlp=d_mlp, batch_size=batch_size, seed=seed,
                                eval_every=eval_every, probe_every=probe_every,
                                checkpoint_every=checkpoint_every, trajectory_every=trajectory_every)
        run = train_grokking(config, _store(data), resume=resume, progress=progress)
    except (ValueError, TrainingDiverged) as exc:
        _fail(str(exc))
    _report(run)


@train_app.command("superposition")
def train_superposition_cmd(
    features: Annotated[int, typer.Option(help="Number of features n.")] = 5,
    hidden: Annotated[int, typer.Option(help="Hidden dimensions m.")] = 2,
    sparsity: Annotated[str, typer.Option(help="Comma-separated sparsities S in [0, 1), trained in one batch.")] = "0,0.7,0.9,0.97,0.99,0.997",
    importance_decay: Annotated[float, typer.Option(help="Feature importance I_i = decay**i.")] = 0.9,
    inits: Annotated[int, typer.Option(help="Random inits per sparsity (the lowest loss is summarised).")] = 4,
    variant: Annotated[str, typer.Option(help="relu | linear | abs")] = "relu",
    steps: int = 5000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    data: DataOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train a grid of toy models of superposition (Elhage et al. 2022) in one batch."""
    from workbench.superposition.run import ToyRunConfig, train_toy_run

    try:
        values = [float(v) for v in sparsity.split(",") if v.strip()]
        config = ToyRunConfig(n_features=features, n_hidden=hidden, sparsity=values, importance_decay=importance_decay,
                              n_inits=inits, steps=steps, batch_size=batch_size, lr=lr, seed=seed, variant=variant)
        run = train_toy_run(config, _store(data), progress=progress)
    except ValueError as exc:
        _fail(str(exc))
    summary = run.state["summary"]
    for s, rep, dpf in zip(values, *(summary[k] if isinstance(summary[k], list) else [summary[k]]
                                      for k in ("represented", "dims_per_feature"))):
        typer.echo(f"S={s:<6g} represented features {rep:.0f}/{features}, dimensions per feature {dpf:.3f}")
    typer.echo(f"run_id: {run.id}")


@train_app.command("groups")
def train_groups_cmd(
    group: Annotated[str, typer.Option(help="Z<n>, D<n>, S<n>, A<n> (n <= 5), Q8, or products like Z2xZ4.")] = "S4",
    word: Annotated[str, typer.Option(help="The operation, a word in a, b: ab, aba^-1, a^2b, abA ...")] = "ab",
    frac: Annotated[float, typer.Option(help="Train fraction of all |G|² pairs.")] = 0.7,
    model: Annotated[str, typer.Option(help="li2 (one-hot → W → σ → V) | mlp (embedding MLP)")] = "li2",
    hidden: Annotated[int, typer.Option(help="Hidden neurons.")] = 512,
    activation: Annotated[str, typer.Option(help="li2 activation: sqr | relu")] = "sqr",
    optimizer: Annotated[str, typer.Option(help="adamw | muon | grokfast-ema | grokfast-ma")] = "adamw",
    lr: Annotated[float, typer.Option(help="AdamW learning rate (muon: for non-2-D parameters).")] = 3e-3,
    wd: Annotated[float, typer.Option(help="AdamW weight decay.")] = 1.0,
    muon_lr: float = 0.02,
    muon_wd: float = 0.1,
    steps: int = 1500,
    seed: int = 0,
    probe_every: Annotated[int, typer.Option(help="Irrep measures every N steps.")] = 50,
    data: DataOpt = None,
    resume: ResumeOpt = True,
    progress: ProgressOpt = True,
) -> None:
    """Train on a word task in a finite group, with irrep progress measures (key_irreps in the run's attrs)."""
    from workbench.grokking.groups_run import GroupsConfig, train_groups
    from workbench.train import TrainingDiverged

    try:
        config = GroupsConfig(group=group, word=word, frac=frac, model=model, hidden=hidden, activation=activation,
                              optimizer=optimizer, lr=lr, wd=wd, muon_lr=muon_lr, muon_wd=muon_wd, steps=steps,
                              seed=seed, probe_every=probe_every)
        run = train_groups(config, _store(data), resume=resume, progress=progress)
    except (ValueError, TypeError, TrainingDiverged) as exc:
        _fail(str(exc))
    typer.echo(f"key irreps: {run.attrs.get('key_irreps')}")
    _report(run)


@app.command("sweep")
def sweep_cmd(
    task: Annotated[str, typer.Argument(help="Sweep task: modular, grokking (when installed), ...")],
    grid: Annotated[list[str], typer.Option("--grid", help="Grid axis 'name=v1,v2,...' (repeat per axis).")],
    steps: Annotated[Optional[int], typer.Option(help="Training steps per run.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Fixed config value 'name=value' (repeatable).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Existing Dask scheduler, e.g. tcp://host:8786.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes of the local cluster (no --scheduler).")] = 2,
    data: DataOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train one run per grid point on Dask; print the phase diagram and `sweep_id: <id>` last."""
    from workbench.sweep import parse_grid, parse_overrides, sweep

    try:
        base = parse_overrides(set_ or [])
        if steps is not None:
            base["steps"] = steps
        ds = sweep(task, parse_grid(grid), base=base, scheduler=scheduler, data=_store(data),
                   n_workers=workers, progress=progress)
    except (ValueError, TypeError) as exc:
        _fail(str(exc))
    hidden = {"seconds", "resumed_from", "final_step", "final_train_loss", "status"}
    typer.echo(ds[[v for v in ds.data_vars if v not in hidden]].to_dataframe().to_string())
    if (ds.status == "failed").any():
        typer.echo(f"sweep_id: {ds.sweep_id}")
        raise typer.Exit(1)
    typer.echo(f"sweep_id: {ds.sweep_id}")


@runs_app.command("list")
def runs_list(data: DataOpt = None) -> None:
    """Table of runs in the data root."""
    df = _store(data).list()
    typer.echo("no runs yet: try `workbench demo`" if df.empty else df.to_string(index=False))


@runs_app.command("show")
def runs_show(run_id: str, data: DataOpt = None) -> None:
    """Config, state and metric variables of one run."""
    try:
        run = _store(data).open(run_id)
    except (ValueError, RunNotFoundError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps({"run_id": run.id, "path": str(run.path), "config": run.config, "state": run.state,
                           "checkpoints": run.checkpoint_steps(), "metric_groups": run.groups()}, indent=1))


@runs_app.command("delete")
def runs_delete(run_id: str, data: DataOpt = None,
                yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Delete a run directory."""
    try:
        store = _store(data)
        store.open(run_id)
        if not yes and not typer.confirm(f"delete run {run_id}?"):
            raise typer.Exit(1)
        store.delete(run_id)
    except (ValueError, RunNotFoundError) as exc:
        _fail(str(exc))
    typer.echo(f"deleted {run_id}")


@app.command()
def serve(
    data: DataOpt = None,
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 5006,
    host: Annotated[str, typer.Option(help="Interface to bind; keep 127.0.0.1 unless you mean to expose it.")] = "127.0.0.1",
    show: Annotated[bool, typer.Option("--show/--no-show", help="Open a browser tab.")] = False,
) -> None:
    """Serve the dashboard (run browser + one page per lens) on http://HOST:PORT."""
    from widgets.serve import serve_dashboard

    serve_dashboard(_store(data), port=port, host=host, show=show)


@app.command()
def demo(data: DataOpt = None, steps: int = 2500, progress: ProgressOpt = True) -> None:
    """Train the embedded default run (MLP on a+b mod 97) and print a summary."""
    from workbench.grokking.modular_run import ModularConfig, train_modular

    store = _store(data)
    config = ModularConfig(steps=steps)
    typer.echo(f"training {config.to_run_config()['model']} on a+b mod {config.p} "
               f"({config.frac:.0%} of pairs for training) for {steps} steps into {store.root}")
    run = train_modular(config, store, progress=progress)
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


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="Run id (see `workbench runs list`).")],
    out: Annotated[Optional[Path], typer.Option("--out", help="HTML file to write (default: report-<run id>.html).")] = None,
    data: DataOpt = None,
) -> None:
    """Write one self-contained HTML file: the run's curves and every lens that applies (opens offline)."""
    # the view layer, imported lazily: workbench itself never imports widgets
    from widgets.report import write_report

    try:
        path, result = write_report(_store(data), run_id, out)
    except (ValueError, TypeError, RunNotFoundError) as exc:
        _fail(str(exc))
    for lens, reason in result.skipped:
        typer.secho(f"note: the {lens} lens is not in the report: {reason}", fg=typer.colors.YELLOW, err=True)
    shown = ", ".join(s.lens for s in result.sections)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; {len(result.figures)} figures: {shown})")


@app.command("spd")
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
        ds = decompose_tms(features, hidden, seeds=seeds, identity=identity, store=_store(data),
                           progress=progress, seed=seed, **overrides)
    except (ValueError, TypeError) as exc:
        _fail(str(exc))
    typer.echo(f"artifact: {ARTIFACT_KIND}/{ds.attrs['artifact']}")
    for name in ("mmcs", "ml2r", "alive"):
        values = ds[name].values
        typer.echo(f"{name}: {values.mean():.4g} (per seed: {', '.join(f'{v:.4g}' for v in values)})")


@app.command("spectrum")
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
        _fail(str(exc))
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


import_app = typer.Typer(help="Bring runs made elsewhere into the run store.", no_args_is_help=True)
app.add_typer(import_app, name="import")


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
        run = import_checkpoints(directory, _store(data), project_dim=project_dim or None, bootstrap=bootstrap,
                                 progress=progress)
    except (ValueError, TypeError) as exc:
        _fail(str(exc))
    steps = run.config["steps"]
    typer.echo(f"imported {len(steps)} checkpoints (steps {steps[0]}..{steps[-1]}, {run.config['layout']} layout) "
               f"into {run.path}: metric group 'spectrum', trajectory of {run.trajectory().sizes['param']} params")
    typer.echo(f"run_id: {run.id}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
