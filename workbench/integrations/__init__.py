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

from workbench.store import Run, RunStore

__all__ = ["check_target", "jsonable", "open_run"]


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
