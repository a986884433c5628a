"""Recorder: everything a run records, for ``fit`` and for any hand-written PyTorch loop.

The Recorder owns the side of training that is not stepping: metrics buffered and flushed into the
run, probes at their own cadence, verified checkpoints, the parameter trajectory, the NaN/Inf stop
and the state needed to resume exactly. Without a run it records nothing and touches no file.

A loop with ``steps`` updates, where ``step`` counts the updates done so far::

    rec = Recorder(run, model, opt, probes={"spectrum": (make_spectrum_probe(), 50)},
                   checkpoint_every=100, trajectory_every=10, state={"data": gen})
    with rec:
        for step in range(rec.resume(), steps + 1):
            rec.step(step, final=step == steps)    # probes, trajectory, checkpoint due at `step`
            if step == steps:
                break
            loss = loss_fn(model(*batch(gen)), ...)
            rec.check(step, loss)                  # NaN/Inf → TrainingDiverged, run marked "diverged"
            rec.log(step, train_loss=loss.item())  # one metrics row (calls at one step merge)
            opt.zero_grad(); loss.backward(); opt.step()

A checkpoint at ``step`` holds the model, the optimizer and every object of ``state`` (anything
with ``state_dict``/``load_state_dict``, or a ``torch.Generator``) as they are when
:meth:`Recorder.step` is called, so :meth:`Recorder.resume` continues the loop bit for bit on CPU.

One writer per run: :meth:`Recorder.resume`/:meth:`Recorder.begin` take the run's writer lock
(:meth:`~workbench.store.RunStore.lock`; a second writer gets :class:`~workbench.store.RunLockedError`
or, with ``wait=True``, waits) and :meth:`Recorder.close` or leaving the ``with`` block releases it.
Leaving the block by an exception records why: ``failed`` (an error, with its message and step) or
``interrupted`` (Ctrl-C, SIGTERM, ``SystemExit``, with the command that resumes the run).
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

import numpy as np
import torch
import xarray as xr
from torch import nn

from workbench.store import Run
from workbench.trajectory import ParameterRecorder

FLUSH_COST_FACTOR = 50  # metrics are written at most every 50x the last write's duration (<= 2% of the time)
Probe = Callable[[nn.Module, Any], xr.Dataset]
TRAJECTORY, CHECKPOINT = ("trajectory",), ("checkpoint",)  # keys beside probe names in Recorder._done


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or Inf; the run keeps its last good checkpoint."""


def rows_dataset(rows: list[dict]) -> xr.Dataset:
    """Metric rows ``[{"step": s, name: value, ...}]`` → float64 Dataset over ``step`` (NaN if absent)."""
    names = list(dict.fromkeys(k for r in rows for k in r if k != "step"))
    return xr.Dataset({k: ("step", np.array([r.get(k, np.nan) for r in rows], dtype=np.float64)) for k in names},
                      coords={"step": np.array([r["step"] for r in rows], dtype=np.int64)})


def _check_probes(probes: Mapping[str, tuple[Probe, int]] | None) -> dict[str, tuple[Probe, int]]:
    probes = dict(probes or {})
    for name, spec in probes.items():
        if name == "train":
            raise ValueError("probe name 'train' is reserved for the logged metrics; pick another name")
        if not (isinstance(spec, tuple) and len(spec) == 2 and callable(spec[0])):
            raise TypeError(f"probes[{name!r}] must be a (fn, every) pair, got {spec!r}")
        if not isinstance(spec[1], int) or spec[1] < 1:
            raise ValueError(f"probes[{name!r}]: every must be a positive int, got {spec[1]!r}")
    return probes


def _state_of(obj: Any) -> Any:
    return obj.get_state() if isinstance(obj, torch.Generator) else obj.state_dict()


def _load_into(obj: Any, state: Any) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(state.cpu())
    else:
        obj.load_state_dict(state)


class Recorder:
    """Record a training loop into ``run``: metrics, probes, checkpoints, trajectory, NaN stop, resume.

    Parameters
    ----------
    run : a :class:`~workbench.store.Run`, or ``None`` to record nothing (no file is touched).
    model, optimizer : what is checkpointed and probed; the optimizer may be ``None``.
    probes : ``{name: (fn, every)}``; ``fn(model, probe_input) -> xr.Dataset`` (no ``step`` dim) runs
        every ``every`` steps and at the final step (model in eval mode, no grad) into metric group
        ``name``.
    probe_input : the second argument of every probe (e.g. the task); default ``None``.
    checkpoint_every : verified checkpoint every this many steps and at the final step (0: final only).
    trajectory_every : parameter vector (``trajectory``) every this many steps into ``traj.zarr``.
    trajectory : the :class:`~workbench.trajectory.ParameterRecorder`; default a sparse JL sketch
        of all parameters seeded with ``seed``.
    state : further ``{name: object}`` saved in checkpoints and restored by :meth:`resume`
        (LR schedulers, data generators): ``state_dict``/``load_state_dict`` or ``torch.Generator``.
    flush_seconds : buffered rows reach the store at least this often (live dashboards read them),
        or every ``FLUSH_COST_FACTOR`` × the last write's duration if longer: an append rewrites its
        group, so long runs write less often and the store costs ~2 % of the time. Checkpoints flush.
    device : where :meth:`resume` loads checkpoint tensors.
    wait : when another process or thread trains the run, wait for it (True) or raise
        :class:`~workbench.store.RunLockedError` at once (False, the default).
    """

    def __init__(self, run: Run | None, model: nn.Module, optimizer: Any = None, *,
                 probes: Mapping[str, tuple[Probe, int]] | None = None, probe_input: Any = None,
                 checkpoint_every: int = 0, trajectory_every: int = 0,
                 trajectory: ParameterRecorder | None = None, state: Mapping[str, Any] | None = None,
                 seed: int = 0, flush_seconds: float = 2.0, device: str | torch.device = "cpu",
                 wait: bool = False):
        if run is not None and not isinstance(run, Run):
            raise TypeError(f"run must be a workbench.store.Run or None, got {type(run).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        for name, every in (("checkpoint_every", checkpoint_every), ("trajectory_every", trajectory_every)):
            if not isinstance(every, int) or every < 0:
                raise ValueError(f"{name} must be an int >= 0, got {every!r}")
        self.state = dict(state or {})
        for name, obj in self.state.items():
            if not (isinstance(obj, torch.Generator) or (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"))):
                raise TypeError(f"state[{name!r}] needs state_dict/load_state_dict or must be a torch.Generator")
        self.run, self.model, self.optimizer = run, model, optimizer
        self.probes, self.probe_input = _check_probes(probes), probe_input
        self.checkpoint_every, self.trajectory_every = checkpoint_every, trajectory_every
        if trajectory_every and trajectory is None and run is not None:
            trajectory = ParameterRecorder(model, seed=seed)
        self.trajectory, self.flush_seconds, self.device = trajectory, flush_seconds, device
        self.start, self.last_step = 0, None
        self.rows: list[dict] = []  # logged metric rows of this session (the "train" group)
        self._sent = 0  # rows already in the store
        self._probed: dict[str, list[xr.Dataset]] = {}
        self._done: dict[str | tuple[str], int] = {}  # probe name / TRAJECTORY / CHECKPOINT → last step done
        self._last_flush, self._flush_cost = time.monotonic(), 0.0
        self.wait, self._lock = wait, contextlib.ExitStack()
        self._locked = False

    # -- start ---------------------------------------------------------------------------------
    def resume(self, enabled: bool | int = True) -> int:
        """Take the run's writer lock and load its newest checkpoint that verifies (if any, and
        ``enabled``) into the model, the optimizer and ``state``; drop what the run recorded after
        it; return the step to continue from.

        ``enabled`` may be a step: resume from the checkpoint at exactly that step (``--from-step``).
        Newer checkpoints that fail their sha256 check are skipped with a warning; checkpoints after
        the step resumed from are deleted (the resumed history replaces them).
        """
        from_step = None if isinstance(enabled, bool) else enabled
        if from_step is not None and (not isinstance(from_step, int) or from_step < 0):
            raise ValueError(f"resume must be True, False or a checkpoint step >= 0, got {enabled!r}")
        start = 0
        if self.run is not None and enabled is not False:
            self._acquire()
            try:
                start = self._load(from_step)
            except BaseException:
                self._release()
                raise
        self.begin(start)
        return start

    def _load(self, from_step: int | None) -> int:
        """Load the checkpoint to resume from (see :meth:`resume`); its step, or 0 without one."""
        steps = self.run.checkpoint_steps()
        if from_step is not None:
            if from_step not in steps:
                raise ValueError(f"run {self.run.id} has no checkpoint at step {from_step}; "
                                 f"its checkpoints are at steps {steps or 'none'}")
            step = from_step
        elif not steps:
            return 0
        else:
            step = self.run.newest_verified_checkpoint()
            if step is None:
                raise ValueError(f"no checkpoint of run {self.run.id} verifies (steps {steps} all fail their "
                                 "sha256 check); start it over with --no-resume (resume=False)")
        ckpt = self.run.load_checkpoint(step, device=self.device)
        missing = sorted(set(self.state) - set(ckpt["extra"]))
        if missing:
            raise ValueError(f"the checkpoint of run {self.run.id} at step {ckpt['step']} holds no state "
                             f"for {missing}; it has {sorted(ckpt['extra'])}")
        self.model.load_state_dict(ckpt["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        for name, obj in self.state.items():
            _load_into(obj, ckpt["extra"][name])
        self.run.drop_checkpoints_after(step)
        return step

    def begin(self, start: int = 0) -> None:
        """Start recording at ``start`` without loading anything (the loop restored its own state):
        take the run's writer lock; the run drops rows after ``start - 1`` and is marked running."""
        if not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be an int >= 0, got {start!r}")
        self.start = start
        if self.run is not None:
            self._acquire()
            self.run.truncate(start - 1)
            self.run.update_state(status="running", reason="", resume="", started_at=start)

    def _acquire(self) -> None:
        if not self._locked:
            self._lock.enter_context(self.run.store.lock(self.run.id, wait=self.wait))
            self._locked = True

    def _release(self) -> None:
        self._locked = False
        self._lock.close()

    # -- per step ------------------------------------------------------------------------------
    def check(self, step: int, loss: torch.Tensor | float) -> float:
        """Return ``float(loss)``; a NaN/Inf loss flushes, marks the run diverged and raises
        :class:`TrainingDiverged` naming the last good checkpoint."""
        value = loss.item() if isinstance(loss, torch.Tensor) else float(loss)
        if math.isfinite(value):
            return value
        self.flush()
        good = None
        if self.run is not None:
            self.run.update_state(status="diverged", diverged_at=step)
            good = self.run.checkpoint_steps()[-1] if self.run.checkpoint_steps() else None
        raise TrainingDiverged(
            f"loss is {value} at step {step}; training stopped. "
            + (f"Last good checkpoint: step {good} in {self.run.path}." if good is not None else "No checkpoint was kept.")
            + " Lower the learning rate or check the inputs.")

    def log(self, step: int, **values: float | torch.Tensor) -> None:
        """Buffer scalar metrics at ``step`` (group ``train``); calls at the same step merge into one row."""
        row: dict = {"step": int(step)}
        for name, v in values.items():
            if isinstance(v, torch.Tensor):
                if v.numel() != 1:
                    raise ValueError(f"log({name}=...) needs a scalar, got a tensor of shape {tuple(v.shape)}")
                v = v.item()
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"log({name}=...) needs a real number, got {type(v).__name__}")
            row[name] = v
        if self.rows and self.rows[-1]["step"] == row["step"]:
            self.rows[-1].update(row)
            self._sent = min(self._sent, len(self.rows) - 1)  # resend the merged row
        else:
            self.rows.append(row)

    def step(self, step: int, *, final: bool = False) -> None:
        """Run what is due at ``step`` (updates done so far): probes, trajectory, checkpoint; else a
        timed flush. ``final`` marks the last step (probes and a checkpoint run whatever the cadence).
        A second call at the same step does only what the first did not."""
        self.last_step = step
        if self.run is None:
            return
        for name, (probe, every) in self.probes.items():
            if (step % every == 0 or final) and self._done.get(name) != step:
                self._probed.setdefault(name, []).append(self._probe(name, probe).expand_dims(step=[step]))
                self._done[name] = step
        if (self.trajectory is not None and self.trajectory_every and step % self.trajectory_every == 0
                and self._done.get(TRAJECTORY) != step):
            self.run.append_trajectory(step, self.trajectory(self.model), attrs=self.trajectory.attrs())
            self._done[TRAJECTORY] = step
        due = final or (self.checkpoint_every and step % self.checkpoint_every == 0)
        if due and (step > self.start or step == 0) and self._done.get(CHECKPOINT) != step:
            self.save_checkpoint(step)
        elif time.monotonic() - self._last_flush > max(self.flush_seconds, FLUSH_COST_FACTOR * self._flush_cost):
            started = time.monotonic()
            self.flush()
            self._last_flush = time.monotonic()
            self._flush_cost = self._last_flush - started

    def _probe(self, name: str, probe: Probe) -> xr.Dataset:
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            ds = probe(self.model, self.probe_input)
        self.model.train(was_training)
        if not isinstance(ds, xr.Dataset) or "step" in ds.dims:
            raise TypeError(f"probe {name!r} must return an xr.Dataset without a 'step' dim, got {type(ds).__name__}")
        return ds

    # -- writing -------------------------------------------------------------------------------
    def save_checkpoint(self, step: int) -> None:
        """Flush, then write a verified checkpoint of the model, optimizer and ``state`` at ``step``."""
        if self.run is None:
            return
        self.flush()
        self.run.save_checkpoint(step, self.model, self.optimizer,
                                 {name: _state_of(obj) for name, obj in self.state.items()})
        self._done[CHECKPOINT] = step

    def flush(self) -> None:
        """Append buffered rows and probe results to the run; update its step and summary."""
        if self.run is None:
            return
        if self._sent < len(self.rows):
            self.run.append(xr.concat([rows_dataset([r]) for r in self.rows[self._sent:]], dim="step"))
            self._sent = len(self.rows)
        for group, parts in self._probed.items():
            if parts:
                self.run.append(xr.concat(parts, dim="step"), group=group)
                parts.clear()
        if self.rows:
            last = self.rows[-1]
            self.run.update_state(step=last["step"], summary={k: v for k, v in last.items() if k != "step"})

    def history(self) -> xr.Dataset:
        """The rows logged in this session as a Dataset over ``step`` (kept in memory, also without a run)."""
        return rows_dataset(self.rows)

    def close(self, step: int | None = None) -> None:
        """Flush, mark the run done at ``step`` (default: the last step given to :meth:`step`) and
        release its writer lock."""
        try:
            self.flush()
            if self.run is not None:
                done = step if step is not None else self._at()
                self.run.update_state(status="done", step=done, reason="", resume="")
        finally:
            self._release()

    def abort(self, exc: BaseException) -> None:
        """Keep what was measured, record why training stopped and release the writer lock.

        ``interrupted`` for Ctrl-C, SIGTERM (as ``KeyboardInterrupt``) and ``SystemExit``, with the
        command that resumes the run; ``failed`` with the error for anything else; a
        :class:`TrainingDiverged` run keeps its ``diverged`` status.
        """
        try:
            if self.run is None or isinstance(exc, TrainingDiverged):
                return
            with contextlib.suppress(Exception):  # e.g. a full disk: the status below matters more
                self.flush()
            step = self._at()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                status, reason = "interrupted", f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''} at step {step}"
            else:
                status, reason = "failed", f"{type(exc).__name__}: {exc} (at step {step})"
            with contextlib.suppress(Exception):
                self.run.update_state(status=status, reason=reason, failed_at=step,
                                      resume=self.run.resume_command())
        finally:
            self._release()

    def _at(self) -> int:
        """The last step seen (what a status refers to)."""
        return self.last_step if self.last_step is not None else self.start

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)
