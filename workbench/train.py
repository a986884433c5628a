"""The training loop: ``fit(model, task, optimizer, steps, probes=..., run=...)``, a short loop over a
:class:`~workbench.record.Recorder`.

Order of work at step ``s`` (``s`` updates done so far): draw the batch, the NaN/Inf check of its
loss, evaluate (every ``eval_every``), then the Recorder's due probes, trajectory and checkpoint
(every ``checkpoint_every``), then the update ``s → s+1``. A checkpoint at ``s`` holds everything
needed to redo the loop from ``s`` — model, optimizer (including wrappers such as Grokfast), LR
scheduler, the batch-sampling generator before batch ``s`` — so a run that is killed and resumed
gives the same metrics, bit for bit on CPU, as one that never stopped.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn
from tqdm.auto import tqdm

from workbench.parallel import flush_denormals
from workbench.record import Probe, Recorder, TrainingDiverged
from workbench.store import Run
from workbench.trajectory import ParameterRecorder

__all__ = ["Batches", "TrainingDiverged", "default_optimizer", "evaluate", "fit", "progress_enabled"]


def default_optimizer(model: nn.Module, lr: float = 1e-3, weight_decay: float = 1.0,
                      betas: tuple[float, float] = (0.9, 0.98)) -> torch.optim.Optimizer:
    """AdamW with the grokking paper's defaults (Nanda et al. 2023: lr 1e-3, wd 1, β=(0.9, 0.98))."""
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    params = list(model.parameters())
    # the fused kernel: one pass over all parameters (0.18 vs 0.82 ms per step on the grokking model)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused)


def progress_enabled(progress: bool) -> bool:
    """tqdm bars are off when asked, under ``TQDM_DISABLE``, or inside papermill."""
    return progress and not os.environ.get("TQDM_DISABLE") and not os.environ.get("PAPERMILL_EXECUTION")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Cross-entropy loss (float64 log-softmax, as Nanda et al.) and accuracy on ``(x, y)``."""
    logits = model(x)
    return _loss(logits, y).item(), (logits.argmax(-1) == y).double().mean().item()


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.double(), y)


class Batches:
    """Training batches: the whole training set, or ``batch_size`` rows drawn by a seeded generator.

    Its state (``state_dict``) is the generator's state *before* the current batch was drawn, so a
    checkpoint taken after drawing batch ``s`` redraws batch ``s`` on resume.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None, seed: int = 0):
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self._before = self.generator.get_state()

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``(x, y)`` batch."""
        self._before = self.generator.get_state()
        if self.batch_size is None:
            return self.x, self.y
        idx = torch.randint(len(self.x), (self.batch_size,), generator=self.generator).to(self.x.device)
        return self.x[idx], self.y[idx]

    def state_dict(self) -> torch.Tensor:
        return self._before

    def load_state_dict(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.cpu())
        self._before = self.generator.get_state()


def fit(
    model: nn.Module,
    task: Any,
    optimizer: torch.optim.Optimizer | None = None,
    steps: int = 1000,
    *,
    probes: dict[str, tuple[Probe, int]] | None = None,
    run: Run | None = None,
    eval_every: int = 10,
    checkpoint_every: int = 1000,
    trajectory_every: int = 0,
    trajectory: ParameterRecorder | None = None,
    batch_size: int | None = None,
    lr_warmup: int = 0,
    seed: int = 0,
    resume: bool | int = True,
    progress: bool = True,
    flush_seconds: float = 2.0,
    device: str | torch.device = "cpu",
    wait: bool = False,
) -> xr.Dataset:
    """Train ``model`` on ``task`` for ``steps`` updates, recording into ``run`` if given.

    Parameters
    ----------
    model, task : a classifier ``model(x) -> logits`` and a task with ``train_x/train_y/test_x/test_y``.
    optimizer : defaults to :func:`default_optimizer`. Wrappers must provide ``state_dict`` /
        ``load_state_dict``.
    probes : ``{name: (fn, every)}``; ``fn(model, task) -> xr.Dataset`` without a ``step`` dim is run
        every ``every`` steps (model in eval mode, no grad) and stored in metric group ``name``.
    run : a :class:`~workbench.store.Run`; metrics, checkpoints and trajectories go there and, with
        ``resume``, training continues from its newest checkpoint that verifies (or, when ``resume``
        is a step, from the checkpoint at that step). Training holds the run's writer lock: a run
        another process trains raises :class:`~workbench.store.RunLockedError`, or waits with ``wait``.
        An error or interruption marks the run ``failed``/``interrupted`` with the reason.
    trajectory_every, trajectory : see :class:`~workbench.record.Recorder`.
    batch_size : ``None`` → full batch; else mini-batches drawn by a generator seeded with ``seed``.
    lr_warmup : linear warm-up of the learning rate over this many steps.
    flush_seconds : see :class:`~workbench.record.Recorder`.

    Returns
    -------
    xr.Dataset with ``train_loss, test_loss, train_acc, test_acc, lr`` over ``step`` (this call's steps).
    """
    if steps < 0 or eval_every < 1 or checkpoint_every < 1:
        raise ValueError("steps must be >= 0 and eval_every, checkpoint_every >= 1")
    model.to(device).train()
    batches = Batches(task.train_x.to(device), task.train_y.to(device), batch_size, seed)
    test_x, test_y = task.test_x.to(device), task.test_y.to(device)
    optimizer = optimizer if optimizer is not None else default_optimizer(model)
    base_optimizer = getattr(optimizer, "optimizer", optimizer)  # unwrap Grokfast-style wrappers
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        base_optimizer, lambda s: min(1.0, (s + 1) / lr_warmup) if lr_warmup else 1.0)
    rec = Recorder(run, model, optimizer, probes=probes, probe_input=task, checkpoint_every=checkpoint_every,
                   trajectory_every=trajectory_every, trajectory=trajectory, seed=seed, device=device,
                   state={"scheduler": scheduler, "generator": batches}, flush_seconds=flush_seconds, wait=wait)
    start = rec.resume(resume)
    bar = tqdm(total=steps, initial=start, disable=not progress_enabled(progress), desc="train", dynamic_ncols=True)
    with rec, bar, flush_denormals():
        for step in range(start, steps + 1):
            xb, yb = batches.next()
            logits = model(xb)
            loss = _loss(logits, yb)
            rec.check(step, loss)
            if step % eval_every == 0 or step == steps:
                if batch_size is None:
                    train_loss, train_acc = loss.item(), (logits.argmax(-1) == yb).double().mean().item()
                else:
                    train_loss, train_acc = evaluate(model, batches.x, batches.y)
                test_loss, test_acc = evaluate(model, test_x, test_y)
                rec.log(step, train_loss=train_loss, test_loss=test_loss, train_acc=train_acc,
                        test_acc=test_acc, lr=scheduler.get_last_lr()[0])
                bar.set_postfix(train_acc=f"{train_acc:.3f}", test_acc=f"{test_acc:.3f}", loss=f"{train_loss:.3g}")
            rec.step(step, final=step == steps)
            if step == steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.update(1)
    return rec.history()
