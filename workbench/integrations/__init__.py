"""Record other people's training loops into the run store: thin adapters over the Recorder.

- :class:`workbench.integrations.hf.WorkbenchCallback` — a ``transformers.TrainerCallback``
  (extra ``[hf]``);
- :class:`workbench.integrations.lightning.WorkbenchCallback` — a Lightning ``Callback``
  (extra ``[lightning]``).

Both take the data root (or a :class:`~workbench.store.RunStore`, or an open ``run``) and what to
record — ``probes``, ``trajectory_every``, ``checkpoint_every`` — and hand everything else to a
:class:`~workbench.record.Recorder`. This package imports neither library; each module imports its own.
"""
from __future__ import annotations

import json
import os
from typing import Any

from workbench.record import Probe, Recorder
from workbench.store import Run, RunStore
from workbench.trajectory import ParameterRecorder

__all__ = ["RecordingCallback", "check_target", "jsonable", "open_run"]


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values (objects that JSON cannot hold become their ``str``)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def check_target(data: RunStore | str | os.PathLike | None, run: Run | None) -> None:
    """Refuse a run together with a data root, and a run that is not a :class:`~workbench.store.Run`."""
    if run is not None and data is not None:
        raise ValueError("pass either data (a RunStore or a root directory) or run, not both")
    if run is not None and not isinstance(run, Run):
        raise TypeError(f"run must be a workbench.store.Run, got {type(run).__name__}")


def open_run(data: RunStore | str | os.PathLike | None, config: dict) -> Run:
    """The run of ``config`` in ``data`` (a RunStore or a root directory; ``None``:
    :func:`~workbench.store.default_root`), created if new."""
    store = data if isinstance(data, RunStore) else RunStore(data)
    return store.create(jsonable(config))


class RecordingCallback:
    """What both callbacks hold: where to record (``data`` or ``run``), the run's ``config`` and the
    :class:`~workbench.record.Recorder` options; the framework classes add their hooks on top."""

    def __init__(self, data: RunStore | str | os.PathLike | None = None, *, run: Run | None = None,
                 config: dict | None = None, probes: dict[str, tuple[Probe, int]] | None = None,
                 probe_input: Any = None, trajectory_every: int = 0, checkpoint_every: int = 0,
                 trajectory: ParameterRecorder | None = None):
        check_target(data, run)
        self.data, self.run, self.config = data, run, config
        self.options = {"probes": probes, "probe_input": probe_input, "trajectory_every": trajectory_every,
                        "checkpoint_every": checkpoint_every, "trajectory": trajectory}
        self.recorder: Recorder | None = None
