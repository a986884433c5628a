"""``workbench train …`` (modular, grokking, superposition, groups, resume) and ``workbench sweep``."""
from __future__ import annotations

import contextlib
import math
from typing import Annotated, Optional

import typer

from workbench.cli.common import (
    MAX_P,
    MAX_TOY_BATCH,
    MAX_WIDTH,
    DataOpt,
    ProgressOpt,
    ResumeOpt,
    WaitOpt,
    fail,
    finite,
    open_store,
    print_run,
)
from workbench.cli.guard import check_batch_size, check_optimizer, train_guarded
from workbench.store import RunDamagedError, RunNotFoundError, default_root

train_app = typer.Typer(help="Train a run into the run store (prints `run_id: <id>` last).", no_args_is_help=True)


@train_app.command("modular")
def train_modular_cmd(
    p: Annotated[int, typer.Option(help="Prime modulus.", min=2, max=MAX_P)] = 97,
    op: Annotated[str, typer.Option(help="add | sub | mul | div | x2xyy2")] = "add",
    frac: Annotated[float, typer.Option(help="Train fraction in (0, 1).", callback=finite)] = 0.5,
    d_embed: Annotated[int, typer.Option(min=1, max=MAX_WIDTH)] = 128,
    d_hidden: Annotated[int, typer.Option(min=1, max=MAX_WIDTH)] = 256,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.", callback=finite)] = 1e-3,
    wd: Annotated[float, typer.Option(help="AdamW weight decay.", callback=finite)] = 1.0,
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
        check_batch_size(batch_size, config.task().train_x.shape[0])
    except ValueError as exc:
        fail(str(exc))
    store = open_store(data)
    print_run(train_guarded(store, config.to_run_config(), wait,
                   lambda: train_modular(config, store, resume=resume, progress=progress)))


# -- lens commands are registered below this line ---------------------------------------------


@train_app.command("grokking")
def train_grokking_cmd(
    p: Annotated[int, typer.Option(help="Prime modulus.", min=2, max=MAX_P)] = 113,
    op: Annotated[str, typer.Option(help="add | sub | mul | div | x2xyy2")] = "add",
    frac: Annotated[float, typer.Option(help="Train fraction in (0, 1).", callback=finite)] = 0.3,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.", callback=finite)] = 1e-3,
    wd: Annotated[float, typer.Option(help="AdamW weight decay.", callback=finite)] = 1.0,
    steps: Annotated[int, typer.Option(min=1)] = 40_000,
    optimizer: Annotated[str, typer.Option(help="adamw | grokfast-ema | grokfast-ma | muon")] = "adamw",
    muon_lr: Annotated[float, typer.Option(help="Muon learning rate (hidden matrices).", callback=finite)] = 0.02,
    muon_wd: Annotated[float, typer.Option(help="Muon weight decay (0.5: measured, docs/grokking.md).", callback=finite)] = 0.5,
    gf_alpha: Annotated[float, typer.Option(help="Grokfast EMA momentum in [0, 1).", callback=finite)] = 0.98,
    gf_lamb: Annotated[Optional[float], typer.Option(help="Grokfast lambda >= 0 (default 2 EMA / 5 MA).",
                                                     callback=finite)] = None,
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
        check_batch_size(batch_size, config.task().train_x.shape[0])
        check_optimizer(config)
    except ValueError as exc:
        fail(str(exc))
    store = open_store(data)
    print_run(train_guarded(store, config.to_run_config(), wait,
                   lambda: train_grokking(config, store, resume=resume, progress=progress)))


@train_app.command("superposition")
def train_superposition_cmd(
    features: Annotated[int, typer.Option(help="Number of features n.", min=1, max=MAX_WIDTH)] = 5,
    hidden: Annotated[int, typer.Option(help="Hidden dimensions m.", min=1, max=MAX_WIDTH)] = 2,
    sparsity: Annotated[str, typer.Option(help="Comma-separated sparsities S in [0, 1), trained in one batch.")] = "0,0.7,0.9,0.97,0.99,0.997",
    importance_decay: Annotated[float, typer.Option(help="Feature importance I_i = decay**i.", callback=finite)] = 0.9,
    inits: Annotated[int, typer.Option(help="Random inits per sparsity (the lowest loss is summarised).", min=1)] = 4,
    variant: Annotated[str, typer.Option(help="relu | linear | abs")] = "relu",
    steps: Annotated[int, typer.Option(min=1)] = 5000,
    batch_size: Annotated[int, typer.Option(help="Samples per step.", min=1, max=MAX_TOY_BATCH)] = 1024,
    lr: Annotated[float, typer.Option(callback=finite)] = 1e-3,
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
        fail(str(exc))
    store = open_store(data)
    run = train_guarded(store, config.to_run_config(), wait, lambda: train_toy_run(config, store, progress=progress))
    summary = run.state["summary"]
    for s, rep, dpf in zip(values, *(summary[k] if isinstance(summary[k], list) else [summary[k]]
                                      for k in ("represented", "dims_per_feature"))):
        typer.echo(f"S={s:<6g} represented features {rep:.0f}/{features}, dimensions per feature {dpf:.3f}")
    typer.echo(f"run_id: {run.id}")


@train_app.command("groups")
def train_groups_cmd(
    group: Annotated[str, typer.Option(help="Z<n>, D<n>, S<n>, A<n> (n <= 5), Q8, or products like Z2xZ4.")] = "S4",
    word: Annotated[str, typer.Option(help="The operation, a word in a, b: ab, aba^-1, a^2b, abA ...")] = "ab",
    frac: Annotated[float, typer.Option(help="Train fraction of all |G|² pairs.", callback=finite)] = 0.7,
    model: Annotated[str, typer.Option(help="li2 (one-hot → W → σ → V) | mlp (embedding MLP)")] = "li2",
    hidden: Annotated[int, typer.Option(help="Hidden neurons.", min=1, max=MAX_WIDTH)] = 512,
    activation: Annotated[str, typer.Option(help="li2 activation: sqr | relu")] = "sqr",
    optimizer: Annotated[str, typer.Option(help="adamw | muon | grokfast-ema | grokfast-ma")] = "adamw",
    lr: Annotated[float, typer.Option(help="AdamW learning rate (muon: for non-2-D parameters).", callback=finite)] = 3e-3,
    wd: Annotated[float, typer.Option(help="AdamW weight decay.", callback=finite)] = 1.0,
    muon_lr: Annotated[float, typer.Option(callback=finite)] = 0.02,
    muon_wd: Annotated[float, typer.Option(callback=finite)] = 0.1,
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
        fail(str(exc))
    store = open_store(data)
    run = train_guarded(store, config.to_run_config(), wait,
                 lambda: train_groups(config, store, resume=resume, progress=progress))
    typer.echo(f"key irreps: {run.attrs.get('key_irreps')}")
    print_run(run)


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
        store = open_store(data, create=False)
        run = store.open(run_id)
        kind = run.config.get("kind")
        if kind not in RESUMABLE or not isinstance(run.config.get("train"), dict):
            raise ValueError(f"run {run_id} ({kind!r}) was not made by `workbench train {'|'.join(RESUMABLE)}`; "
                             "resume it from the code that trained it (fit/Recorder resume from its checkpoints)")
        module, config_name, train_name = RESUMABLE[kind]
        mod = importlib.import_module(module)
        config = getattr(mod, config_name)(**run.config["train"])
    except (ValueError, TypeError, FileNotFoundError, RunNotFoundError, RunDamagedError) as exc:
        fail(str(exc))
    train = getattr(mod, train_name)
    resume = True if from_step is None else from_step
    print_run(train_guarded(store, run.config, wait, lambda: train(config, store, resume=resume, progress=progress)))


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
        ds = sweep(task, parse_grid(grid), base=base, scheduler=scheduler, data=open_store(data),
                   n_workers=workers, progress=progress)
    except (ValueError, TypeError, OSError) as exc:  # OSError: an unreachable --scheduler (connect timeout)
        if not existed:  # nothing created on failure: the root this command made, while still empty
            with contextlib.suppress(OSError):
                root.rmdir()
        fail(f"cannot reach the Dask scheduler {scheduler}: {exc}" if isinstance(exc, OSError) and scheduler
              else str(exc))
    hidden = {"seconds", "resumed_from", "final_step", "final_train_loss", "status"}
    typer.echo(ds[[v for v in ds.data_vars if v not in hidden]].to_dataframe().to_string())
    if (ds.status == "failed").any():
        typer.echo(f"sweep_id: {ds.sweep_id}")
        raise typer.Exit(1)
    typer.echo(f"sweep_id: {ds.sweep_id}")
