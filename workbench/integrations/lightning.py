"""Record a Lightning run into the run store: ``L.Trainer(callbacks=[WorkbenchCallback(...)])``.

Steps are the Trainer's ``global_step`` (optimizer updates done). At the start of training and
after every update the :class:`~workbench.record.Recorder` runs what is due — probes, the parameter
trajectory, verified checkpoints. Every training batch's loss (``training_step``'s return value)
is stored as ``train_loss`` at the step whose weights produced it (``global_step - 1``), with the
learning rate as ``lr``; after each validation the scalars of ``trainer.callback_metrics`` (what the
module logged with ``self.log``) are stored under their own names. A NaN/Inf loss stops training
with :class:`~workbench.record.TrainingDiverged`.

Lightning keeps resuming to itself (``ckpt_path``); the callback then drops what the run recorded
after the resumed step and records on from there.
"""
from __future__ import annotations

from typing import Any

import torch

try:
    from lightning.pytorch import Callback
except ImportError:  # the standalone package
    from pytorch_lightning import Callback

from workbench.integrations import RecordingCallback, jsonable, open_run
from workbench.record import Recorder


class WorkbenchCallback(RecordingCallback, Callback):
    """A Lightning ``Callback`` recording the Trainer's run into a workbench run.

    Parameters
    ----------
    data : a :class:`~workbench.store.RunStore` or its root directory (default
        :func:`~workbench.store.default_root`).
    run : record into this run instead (then leave ``data`` out).
    config : the run's config (its id is a hash of it); default: the module's class, its
        ``hparams`` and the Trainer's ``max_steps``/``max_epochs``: pass one (with your seed) to
        tell apart runs those do not.
    probes, probe_input, trajectory_every, checkpoint_every, trajectory :
        as in :class:`~workbench.record.Recorder`. Checkpoints hold the model and, when the module
        has exactly one optimizer, its state.

    Attributes
    ----------
    run : the :class:`~workbench.store.Run`, once training has begun.
    """

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        cls = type(pl_module)
        config = self.config if self.config is not None else {
            "kind": "lightning", "module": f"{cls.__module__}.{cls.__qualname__}",
            "hparams": jsonable(dict(pl_module.hparams)), "max_steps": trainer.max_steps,
            "max_epochs": trainer.max_epochs}
        self.run = self.run if self.run is not None else open_run(self.data, config)
        optimizer = trainer.optimizers[0] if len(trainer.optimizers) == 1 else None
        self.recorder = Recorder(self.run, pl_module, optimizer, **self.options)
        self.recorder.begin(trainer.global_step)
        self.recorder.step(trainer.global_step)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        step = trainer.global_step
        if isinstance(loss, torch.Tensor) and step > 0:
            measured = step - 1  # the loss of the weights before this update
            self.recorder.check(measured, loss)
            values = {"train_loss": loss.item()}
            if trainer.optimizers:
                values["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
            self.recorder.log(measured, **values)
        self.recorder.step(step)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self.recorder is None:
            return
        values = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in trainer.callback_metrics.items()
                  if (isinstance(v, torch.Tensor) and v.numel() == 1) or isinstance(v, (int, float))}
        self.recorder.log(trainer.global_step, **values)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.recorder.step(trainer.global_step, final=True)
        self.recorder.close(trainer.global_step)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.recorder is not None:
            self.recorder.abort(exception)  # keep what was measured; record failed/interrupted
