"""Record a Hugging Face ``Trainer`` run into the run store: ``Trainer(..., callbacks=[WorkbenchCallback(...)])``.

Steps are the Trainer's ``global_step`` (optimizer updates done). At the start of training and
after every update the :class:`~workbench.record.Recorder` runs what is due — probes, the parameter
trajectory, verified checkpoints — and every ``on_log`` becomes a metrics row: ``loss`` is stored as
``train_loss`` (the Trainer's mean over the last ``logging_steps`` updates), ``eval_loss`` as
``test_loss``, ``eval_accuracy`` as ``test_acc``, ``learning_rate`` as ``lr``; other numbers keep
their names. A NaN/Inf ``loss`` or ``eval_loss`` stops training with
:class:`~workbench.record.TrainingDiverged` (the Trainer's ``logging_nan_inf_filter``, on by
default, hides NaN training losses: turn it off for the stop to see them).

The Trainer keeps resuming to itself (``resume_from_checkpoint``); the callback then drops what the
run recorded after the resumed step and records on from there.
"""
from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from workbench.integrations import RecordingCallback, jsonable, open_run
from workbench.record import Recorder

RENAME = {"loss": "train_loss", "eval_loss": "test_loss", "eval_accuracy": "test_acc", "learning_rate": "lr"}
SUMMARY_KEY = "train_runtime"  # the Trainer's end-of-training summary log, not a per-step metric
CHECKED = ("loss", "eval_loss")


class WorkbenchCallback(RecordingCallback, TrainerCallback):
    """A ``transformers.TrainerCallback`` recording the Trainer's run into a workbench run.

    Parameters
    ----------
    data : a :class:`~workbench.store.RunStore` or its root directory (default
        :func:`~workbench.store.default_root`).
    run : record into this run instead (then leave ``data`` out).
    config : the run's config (its id is a hash of it); default: the model class, the model's
        ``config`` and the ``TrainingArguments``, so the same model and arguments reuse one run.
    probes, probe_input, trajectory_every, checkpoint_every, trajectory :
        as in :class:`~workbench.record.Recorder`.

    Attributes
    ----------
    run : the :class:`~workbench.store.Run`, once training has begun.
    """

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       **kwargs: Any) -> None:
        config = self.config if self.config is not None else {
            "kind": "hf", "model_class": type(model).__name__,
            "hf_config": jsonable(model.config.to_dict()) if hasattr(model, "config") else {},
            "args": jsonable(args.to_dict())}
        self.run = self.run if self.run is not None else open_run(self.data, config)
        self.recorder = Recorder(self.run, model, optimizer, **self.options)
        self.recorder.begin(state.global_step)
        self.recorder.step(state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.recorder.step(state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not logs or SUMMARY_KEY in logs or self.recorder is None:
            return
        for key in CHECKED:
            if key in logs:
                self.recorder.check(state.global_step, logs[key])
        values = {RENAME.get(k, k): float(v) for k, v in logs.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)
                  and not k.endswith(("_runtime", "_per_second"))}
        self.recorder.log(state.global_step, **values)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.recorder.step(state.global_step, final=True)
        self.recorder.close(state.global_step)
