"""Training from the command line: under the run's writer lock, with honest failure states."""
from __future__ import annotations

import contextlib
import shutil
import signal
import warnings
from collections.abc import Callable, Iterator

import typer

from workbench.cli.common import fail
from workbench.store import (
    FINAL_STATUSES,
    CheckpointError,
    Run,
    RunDamagedError,
    RunLockedError,
    RunNotFoundError,
    RunStore,
    run_id_for,
)


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


def train_guarded(store: RunStore, run_config: dict, wait: bool, train: Callable[[], Run]) -> Run:
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
                    fail(str(exc))
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
        fail(str(exc))
    except FloatingPointError as exc:  # TrainingDiverged: the run is marked diverged
        fail(str(exc))


def check_batch_size(batch_size: int | None, n_train: int) -> None:
    """A mini-batch may not exceed the training set (drawn with replacement, it would only repeat rows)."""
    if batch_size is not None and batch_size > n_train:
        raise ValueError(f"--batch-size {batch_size} exceeds the {n_train} training examples; "
                         "omit it for full-batch training or pass at most that many")


def check_optimizer(config) -> None:
    """Build ``config``'s optimizer on a throw-away parameter: its own checks (Grokfast alpha,
    lambda, window; Muon rates) run before the run exists instead of after."""
    import torch

    config.make_optimizer(torch.nn.Linear(2, 2))
