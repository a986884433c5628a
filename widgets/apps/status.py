"""What a page says about a run's status: :attr:`Run.status` (never "running" once its writer is gone)."""
from __future__ import annotations

from workbench.store import Run


def is_live(run: Run) -> bool:
    """True while a live process holds the run's writer lock (status ``running``)."""
    return run.status == "running"


def status_markdown(run: Run) -> str:
    """The status in backticks, with why (failed, interrupted, stale) and the command that resumes it."""
    info = run.status_info()
    text = f"status `{info['status']}`"
    if info["reason"]:
        text += f" ({info['reason']})"
    if info["resume"] and info["status"] not in ("created", "running"):
        text += f" · resume: `{info['resume']}`"
    return text
