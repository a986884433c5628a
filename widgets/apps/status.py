"""The status a page shows for a run: never "running" (live) once its training process is gone."""
from __future__ import annotations

import time

from workbench.store import Run

#: Without a writer lock to ask, a "running" run whose state.json has not changed for this many
#: seconds is shown as stale (the Recorder rewrites state.json at every flush).
STALE_AFTER_S = 120.0


def run_status(run: Run) -> str:
    """``Run.status`` where the store knows its writer (pid + heartbeat), else the recorded status
    with ``running`` turned ``stale`` once ``state.json`` is older than :data:`STALE_AFTER_S`."""
    if isinstance(getattr(type(run), "status", None), property):
        return run.status
    recorded = run.state.get("status", "created")
    if recorded == "running" and time.time() - (run.path / "state.json").stat().st_mtime > STALE_AFTER_S:
        return "stale"
    return recorded


def is_live(run: Run) -> bool:
    """True while a training process is writing to ``run``."""
    return run_status(run) == "running"
