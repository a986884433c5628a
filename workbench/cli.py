"""The ``workbench`` command: train, runs, serve, demo (``workbench --help``; ``--help`` on each)."""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench.store import (
    FINAL_STATUSES,
    CheckpointError,
    Run,
    RunDamagedError,
    RunLockedError,
    RunNotFoundError,
    RunStore,
    default_root,
    run_id_for,
)

app = typer.Typer(help="Study how neural networks learn: grokking, superposition, weight spectra, Koopman spectra.",
                  no_args_is_help=True, add_completion=False)
train_app = typer.Typer(help="Train a run into the run store (prints `run_id: <id>` last).", no_args_is_help=True)
runs_app = typer.Typer(help="List, show, check and delete runs.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(runs_app, name="runs")

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Run root (default: $WORKBENCH_DATA or data/runs).")]
MAX_TOY_BATCH = 1 << 20  # samples per toy-model step: more only costs memory (4 MiB per feature)
MAX_WIDTH = 1 << 14  # layer widths: a 16384² matrix is already 1 GiB of float32
MAX_P = 2048  # modulus: p² pairs (4M) are materialised when the task is built
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from the last checkpoint.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait",
                                       help="If another process trains this run, wait for it instead of refusing.")]


def _finite(value: float | None) -> float | None:
    """Option callback: refuse NaN and ±Inf (click's ranges let NaN through)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


def _store(data: Path | None, *, create: bool = True) -> RunStore:
    """The run store at ``--data``; ``create=False`` (read-only commands) refuses a missing root."""
    return RunStore(data if data is not None else default_root(), create=create)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Inside the block SIGTERM raises ``KeyboardInterrupt``, so a terminated training records
    ``interrupted`` (with the resume command) like Ctrl-C does."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    """Warnings (e.g. a skipped damaged checkpoint) as one plain ``warning:`` line."""
    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


def _settle(store: RunStore, run_id: str, existed: bool, exc: BaseException) -> None:
    """After ``exc`` stopped a training: a run this command created that recorded nothing is
    removed (nothing created on failure); otherwise a run still ``created``/``running`` is marked
    ``failed``/``interrupted`` with the reason (the Recorder marks what fails inside the loop)."""
    path = store.root / run_id
    if not existed and (not (path / "config.json").exists() or not any(
            (path / d).exists() for d in ("metrics.zarr", "checkpoints", "traj.zarr"))):
        shutil.rmtree(path, ignore_errors=True)
        return
    with contextlib.suppress(RunDamagedError, RunNotFoundError, OSError):
        run = store.open(run_id)
        if run.state.get("status", "created") not in FINAL_STATUSES:
            status = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
            run.update_state(status=status, reason=f"{type(exc).__name__}: {exc}", resume=run.resume_command())


def _train(store: RunStore, run_config: dict, wait: bool, train: Callable[[], Run]) -> Run:
    """``train()`` holding the writer lock of the run of ``run_config``, with honest failure states.

    A run another process trains is refused with a message naming it (or waited for with
    ``wait``); SIGTERM and Ctrl-C mark the run ``interrupted`` and print the resume command;
    errors become one ``error:`` line (exit 2) and a ``failed`` run.
    """
    run_id = run_id_for(run_config)
    existed = store.exists(run_id)
    try:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(store.lock(run_id, wait=False))
            except RunLockedError as exc:
                if not wait:
                    _fail(str(exc))
                typer.secho(f"run {run_id} is being trained by pid {exc.owner.get('pid', '?')} on "
                            f"{exc.owner.get('host', '?')}; waiting for it to finish (Ctrl-C to stop waiting)",
                            err=True)
                stack.enter_context(store.lock(run_id, wait=True))
            stack.enter_context(_sigterm_interrupts())
            stack.enter_context(warnings.catch_warnings())
            warnings.showwarning = _show_warning
            try:
                return train()
            except BaseException as exc:
                _settle(store, run_id, existed, exc)
                raise
    except KeyboardInterrupt:
        cmd = store.open(run_id).resume_command() if store.exists(run_id) else "(nothing was recorded)"
        typer.secho(f"interrupted; resume with: {cmd}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None
    except (ValueError, TypeError, CheckpointError, RunDamagedError, RunLockedError) as exc:
        _fail(str(exc))
    except FloatingPointError as exc:  # TrainingDiverged: the run is marked diverged
        _fail(str(exc))


def _check_batch_size(batch_size: int | None, n_train: int) -> None:
    """A mini-batch may not exceed the training set (drawn with replacement, it would only repeat rows)."""
    if batch_size is not None and batch_size > n_train:
        raise ValueError(f"--batch-size {batch_size} exceeds the {n_train} training examples; "
                         "omit it for full-batch training or pass at most that many")


def _check_optimizer(config) -> None:
    """Build ``config``'s optimizer on a throw-away parameter: its own checks (Grokfast alpha,
    lambda, window; Muon rates) run before the run exists instead of after."""
    import torch

    config.make_optimizer(torch.nn.Linear(2, 2))


def _report(run) -> None:
    summary = run.state.get("summary", {})
    shown = ", ".join(f"{k}={v:.4g}" for k, v in summary.items() if isinstance(v, float))
    typer.echo(f"step {run.state.get('step')}: {shown}")
    typer.echo(f"run_id: {run.id}")


@train_app.command("modular")
def train_modular_cmd(
    p: Annotated[int, typer.Option(help="Prime modulus.", min=2, max=MAX_P)] = 97,
    op: Annotated[str, typer.Option(help="add | sub | mul | div | x2xyy2")] = "add",
    frac: Annotated[float, typer.Option(help="Train fraction in (0, 1).", callback=_finite)] = 0.5,
    d_embed: Annotated[int, typer.Option(min=1, max=MAX_WIDTH)] = 128,
    d_hidden: Annotated[int, typer.Option(min=1, max=MAX_WIDTH)] = 256,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.", callback=_finite)] = 1e-3,
    wd: Annotated[float, typer.Option(help="AdamW weight decay.", callback=_finite)] = 1.0,
    steps: Annotated[int, typer.Option(min=1)] = 2000,
    batch_size: Annotated[Optional[int], typer.Option(help="Mini-batch size (default: full batch).", min=1)] = None,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    eval_every: Annotated[int, typer.Option(min=1)] = 10,
    checkpoint_every: Annotated[int, typer.Option(min=1)] = 500,
    trajectory_every: Annotated[int, typer.Option(min=0)] = 50,
    data: DataOpt = None,
    resume: ResumeOpt = True,
    wait: WaitOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Train the embedding-concat MLP on a modular arithmetic task."""
    from workbench.grokking.modular_run import ModularConfig, train_modular

    try:
        config = ModularConfig(p=p, op=op, frac=frac, d_embed=d_embed, d_hidden=d_hidden, lr=lr, wd=wd,
                               steps=steps, batch_size=batch_size, seed=seed, eval_every=eval_every,
                               checkpoint_every=checkpoint_every, trajectory_every=trajectory_every)
        _check_batch_size(batch_size, config.task().train_x.shape[0])
    except ValueError as exc:
        _fail(str(exc))
    store = _store(data)
    _report(_train(store, config.to_run_config(), wait,
                   lambda: train_modular(config, store, resume=resume, progress=progress)))


# -- lens commands are registered below this line ---------------------------------------------


@train_app.command("grokking")
def train_grokking_cmd(
    p: Annotated[int, typer.Option(help="Prime modulus.", min=2, max=MAX_P)] = 113,
    op: Annotated[str, typer.Option(help="add | sub | mul | div | x2xyy2")] = "add",
    frac: Annotated[float, typer.Option(help="Train fraction in (0, 1).", callback=_finite)] = 0.3,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.", callback=_finite)] = 1e-3,
    wd: Annotated[float, typer.Option(help="AdamW weight decay.", callback=_finite)] = 1.0,
    steps: Annotated[int, typer.Option(min=1)] = 40_000,
    optimizer: Annotated[str, typer.Option(help="adamw | grokfast-ema | grokfast-ma | muon")] = "adamw",
    muon_lr: Annotated[float, typer.Option(help="Muon learning rate (hidden matrices).", callback=_finite)] = 0.02,
    muon_wd: Annotated[float, typer.Option(help="Muon weight decay.", callback=_finite)] = 0.05,
    gf_alpha: Annotated[float, typer.Option(help="Grokfast EMA momentum in [0, 1).", callback=_finite)] = 0.98,
    gf_lamb: Annotated[Optional[float], typer.Option(help="Grokfast lambda >= 0 (default 2 EMA / 5 MA).",
                                                     callback=_finite)] = None,
    gf_window: Annotated[int, typer.Option(help="Grokfast MA window.", min=1)] = 100,
    d_model: Annotated[int, typer.Option(help="Model width (4 heads of d_model/4).", min=4, max=MAX_WIDTH)] = 128,
    d_mlp: Annotated[int, typer.Option(min=1, max=MAX_WIDTH)] = 512,
    batch_size: Annotated[Optional[int], typer.Option(help="Mini-batch size (default: full batch).", min=1)] = None,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    eval_every: Annotated[int, typer.Option(min=1)] = 10,
    probe_every: Annotated[int, typer.Option(help="Fourier progress measures every N steps.", min=1)] = 100,
    checkpoint_every: Annotated[int, typer.Option(min=1)] = 1000,
    trajectory_every: Annotated[int, typer.Option(min=0)] = 100,
    data: DataOpt = None,
    resume: ResumeOpt = True,
    wait: WaitOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Train Nanda et al.'s one-layer transformer with the grokking progress measures."""
    from workbench.grokking import GrokkingConfig, train_grokking

    try:
        config = GrokkingConfig(p=p, op=op, frac=frac, lr=lr, wd=wd, steps=steps, optimizer=optimizer,
                                muon_lr=muon_lr, muon_wd=muon_wd,
                                gf_alpha=gf_alpha, gf_lamb=gf_lamb, gf_window=gf_window, d_model=d_model,
                                d_mlp=d_mlp, batch_size=batch_size, seed=seed,
                                eval_every=eval_every, probe_every=probe_every,
                                checkpoint_every=checkpoint_every, trajectory_every=trajectory_every)
        _check_batch_size(batch_size, config.task().train_x.shape[0])
        _check_optimizer(config)
    except ValueError as exc:
        _fail(str(exc))
    store = _store(data)
    _report(_train(store, config.to_run_config(), wait,
                   lambda: train_grokking(config, store, resume=resume, progress=progress)))


@train_app.command("superposition")
def train_superposition_cmd(
    features: Annotated[int, typer.Option(help="Number of features n.", min=1, max=MAX_WIDTH)] = 5,
    hidden: Annotated[int, typer.Option(help="Hidden dimensions m.", min=1, max=MAX_WIDTH)] = 2,
    sparsity: Annotated[str, typer.Option(help="Comma-separated sparsities S in [0, 1), trained in one batch.")] = "0,0.7,0.9,0.97,0.99,0.997",
    importance_decay: Annotated[float, typer.Option(help="Feature importance I_i = decay**i.", callback=_finite)] = 0.9,
    inits: Annotated[int, typer.Option(help="Random inits per sparsity (the lowest loss is summarised).", min=1)] = 4,
    variant: Annotated[str, typer.Option(help="relu | linear | abs")] = "relu",
    steps: Annotated[int, typer.Option(min=1)] = 5000,
    batch_size: Annotated[int, typer.Option(help="Samples per step.", min=1, max=MAX_TOY_BATCH)] = 1024,
    lr: Annotated[float, typer.Option(callback=_finite)] = 1e-3,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    data: DataOpt = None,
    wait: WaitOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Train a grid of toy models of superposition (Elhage et al. 2022) in one batch."""
    from workbench.superposition.run import ToyRunConfig, train_toy_run

    try:
        values = [float(v) for v in sparsity.split(",") if v.strip()]
        if not all(map(math.isfinite, values)):
            raise ValueError(f"--sparsity values must be finite numbers in [0, 1), got {sparsity!r}")
        config = ToyRunConfig(n_features=features, n_hidden=hidden, sparsity=values, importance_decay=importance_decay,
                              n_inits=inits, steps=steps, batch_size=batch_size, lr=lr, seed=seed, variant=variant)
    except ValueError as exc:
        _fail(str(exc))
    store = _store(data)
    run = _train(store, config.to_run_config(), wait, lambda: train_toy_run(config, store, progress=progress))
    summary = run.state["summary"]
    for s, rep, dpf in zip(values, *(summary[k] if isinstance(summary[k], list) else [summary[k]]
                                      for k in ("represented", "dims_per_feature"))):
        typer.echo(f"S={s:<6g} represented features {rep:.0f}/{features}, dimensions per feature {dpf:.3f}")
    typer.echo(f"run_id: {run.id}")


@train_app.command("groups")
def train_groups_cmd(
    group: Annotated[str, typer.Option(help="Z<n>, D<n>, S<n>, A<n> (n <= 5), Q8, or products like Z2xZ4.")] = "S4",
    word: Annotated[str, typer.Option(help="The operation, a word in a, b: ab, aba^-1, a^2b, abA ...")] = "ab",
    frac: Annotated[float, typer.Option(help="Train fraction of all |G|² pairs.", callback=_finite)] = 0.7,
    model: Annotated[str, typer.Option(help="li2 (one-hot → W → σ → V) | mlp (embedding MLP)")] = "li2",
    hidden: Annotated[int, typer.Option(help="Hidden neurons.", min=1, max=MAX_WIDTH)] = 512,
    activation: Annotated[str, typer.Option(help="li2 activation: sqr | relu")] = "sqr",
    optimizer: Annotated[str, typer.Option(help="adamw | muon | grokfast-ema | grokfast-ma")] = "adamw",
    lr: Annotated[float, typer.Option(help="AdamW learning rate (muon: for non-2-D parameters).", callback=_finite)] = 3e-3,
    wd: Annotated[float, typer.Option(help="AdamW weight decay.", callback=_finite)] = 1.0,
    muon_lr: Annotated[float, typer.Option(callback=_finite)] = 0.02,
    muon_wd: Annotated[float, typer.Option(callback=_finite)] = 0.1,
    steps: Annotated[int, typer.Option(min=1)] = 1500,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    probe_every: Annotated[int, typer.Option(help="Irrep measures every N steps.", min=1)] = 50,
    data: DataOpt = None,
    resume: ResumeOpt = True,
    wait: WaitOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Train on a word task in a finite group, with irrep progress measures (key_irreps in the run's attrs)."""
    from workbench.grokking.groups_run import GroupsConfig, train_groups

    try:
        config = GroupsConfig(group=group, word=word, frac=frac, model=model, hidden=hidden, activation=activation,
                              optimizer=optimizer, lr=lr, wd=wd, muon_lr=muon_lr, muon_wd=muon_wd, steps=steps,
                              seed=seed, probe_every=probe_every)
    except (ValueError, TypeError) as exc:
        _fail(str(exc))
    store = _store(data)
    run = _train(store, config.to_run_config(), wait,
                 lambda: train_groups(config, store, resume=resume, progress=progress))
    typer.echo(f"key irreps: {run.attrs.get('key_irreps')}")
    _report(run)


#: run kind → (module, config class, train function) of the runs ``workbench train resume`` continues.
RESUMABLE = {"modular": ("workbench.grokking.modular_run", "ModularConfig", "train_modular"),
             "grokking": ("workbench.grokking.run", "GrokkingConfig", "train_grokking"),
             "groups": ("workbench.grokking.groups_run", "GroupsConfig", "train_groups")}


@train_app.command("resume")
def train_resume_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (see `workbench runs list`).")],
    from_step: Annotated[Optional[int], typer.Option(
        help="Resume from the checkpoint at this step (default: the newest that verifies).", min=0)] = None,
    data: DataOpt = None,
    wait: WaitOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Continue an interrupted, failed or stale run from a verified checkpoint, to its configured steps."""
    import importlib

    try:
        store = _store(data, create=False)
        run = store.open(run_id)
        kind = run.config.get("kind")
        if kind not in RESUMABLE or not isinstance(run.config.get("train"), dict):
            raise ValueError(f"run {run_id} ({kind!r}) was not made by `workbench train {'|'.join(RESUMABLE)}`; "
                             "resume it from the code that trained it (fit/Recorder resume from its checkpoints)")
        module, config_name, train_name = RESUMABLE[kind]
        mod = importlib.import_module(module)
        config = getattr(mod, config_name)(**run.config["train"])
    except (ValueError, TypeError, FileNotFoundError, RunNotFoundError, RunDamagedError) as exc:
        _fail(str(exc))
    train = getattr(mod, train_name)
    resume = True if from_step is None else from_step
    _report(_train(store, run.config, wait, lambda: train(config, store, resume=resume, progress=progress)))


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

    root = data if data is not None else default_root()
    existed = root.exists()
    try:
        base = parse_overrides(set_ or [])
        if steps is not None:
            base["steps"] = steps
        ds = sweep(task, parse_grid(grid), base=base, scheduler=scheduler, data=_store(data),
                   n_workers=workers, progress=progress)
    except (ValueError, TypeError, OSError) as exc:  # OSError: an unreachable --scheduler (connect timeout)
        if not existed:  # nothing created on failure: the root this command made, while still empty
            with contextlib.suppress(OSError):
                root.rmdir()
        _fail(f"cannot reach the Dask scheduler {scheduler}: {exc}" if isinstance(exc, OSError) and scheduler
              else str(exc))
    hidden = {"seconds", "resumed_from", "final_step", "final_train_loss", "status"}
    typer.echo(ds[[v for v in ds.data_vars if v not in hidden]].to_dataframe().to_string())
    if (ds.status == "failed").any():
        typer.echo(f"sweep_id: {ds.sweep_id}")
        raise typer.Exit(1)
    typer.echo(f"sweep_id: {ds.sweep_id}")


@runs_app.command("list")
def runs_list(data: DataOpt = None) -> None:
    """Table of runs in the data root (status as it is: a run whose process is gone shows `stale`)."""
    try:
        df = _store(data, create=False).list()
    except FileNotFoundError as exc:
        _fail(str(exc))
    typer.echo("no runs yet: try `workbench demo`" if df.empty else df.to_string(index=False))
    for run_id, reason in df.attrs.get("damaged", {}).items():
        typer.secho(f"skipped damaged run {run_id}: {reason}", fg=typer.colors.YELLOW, err=True)


@runs_app.command("show")
def runs_show(run_id: str, data: DataOpt = None) -> None:
    """Config, state, status and metric variables of one run."""
    try:
        run = _store(data, create=False).open(run_id)
        shown = {"run_id": run.id, "path": str(run.path), "status": run.status_info(), "config": run.config,
                 "state": run.state, "checkpoints": run.checkpoint_steps(), "metric_groups": run.groups()}
    except (ValueError, FileNotFoundError, RunNotFoundError, RunDamagedError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(shown, indent=1, default=str))


@runs_app.command("check")
def runs_check(run_id: Annotated[Optional[str], typer.Argument(help="Run id (default: every run).")] = None,
               data: DataOpt = None) -> None:
    """Verify a run's files (JSON, metric checksums, checkpoints, trajectory) and say what to do.

    Exits 1 when a run is damaged, 0 when every run is intact or only has warnings."""
    from workbench.run_check import DAMAGED, OK, check_run

    try:
        store = _store(data, create=False)
        runs = [store.open(run_id)] if run_id is not None else list(store)
    except (ValueError, FileNotFoundError, RunNotFoundError) as exc:
        _fail(str(exc))
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
        store = _store(data, create=False)
        store.open(run_id)
        if not yes and not typer.confirm(f"delete run {run_id}?"):
            raise typer.Exit(1)
        store.delete(run_id)
    except (ValueError, FileNotFoundError, RunNotFoundError, RunLockedError) as exc:
        _fail(str(exc))
    typer.echo(f"deleted {run_id}")


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
        _fail(str(exc))
    serve_dashboard(_store(data), port=port, host=host, show=show, token=token)


@app.command()
def demo(data: DataOpt = None, steps: Annotated[int, typer.Option(min=1)] = 2500, wait: WaitOpt = False,
         progress: ProgressOpt = True) -> None:
    """Train the embedded default run (MLP on a+b mod 97) and print a summary."""
    from workbench.grokking.modular_run import ModularConfig, train_modular

    config = ModularConfig(steps=steps)
    store = _store(data)
    typer.echo(f"training {config.to_run_config()['model']} on a+b mod {config.p} "
               f"({config.frac:.0%} of pairs for training) for {steps} steps into {store.root}")
    run = _train(store, config.to_run_config(), wait, lambda: train_modular(config, store, progress=progress))
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
        path, result = write_report(_store(data, create=False), run_id, out)
    except (ValueError, TypeError, FileNotFoundError, RunNotFoundError, RunDamagedError) as exc:
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
