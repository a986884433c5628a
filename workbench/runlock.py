"""One writer per run: an exclusive ``flock`` on ``<run>/.lock`` naming its owner, with a heartbeat.

The lock file holds the owner (pid, host, start time) as JSON; while the lock is held a daemon
thread touches the file every :data:`HEARTBEAT_SECONDS`, so its mtime is the owner's heartbeat. The
OS drops a ``flock`` when its process dies, so a killed trainer never leaves a run locked, and a
reader can tell a live writer from a dead one (:func:`writer_alive`) without taking the lock.

Taking the lock again in the thread that holds it nests (the sweep and the CLI lock a run, then
``fit``'s Recorder locks it again); any other thread or process is refused or waits.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HEARTBEAT_SECONDS = 5.0  # the owner touches the lock file this often
STALE_AFTER = 30.0  # a heartbeat older than this means no live writer (other hosts; same host: pid check)
LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """Another process or thread is training this run; the message names it and what to do.

    ``owner`` is that writer's ``{pid, host, started, heartbeat_age}`` (see :func:`owner_of`).
    """

    def __init__(self, message: str, owner: dict):
        super().__init__(message)
        self.owner = owner


@dataclass
class _Held:
    fd: int
    thread: int
    depth: int = 1
    stop: threading.Event = field(default_factory=threading.Event)


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


def owner_of(run_dir: Path) -> dict:
    """The last recorded owner of ``run_dir``'s lock: ``{pid, host, started, heartbeat_age}`` or {}."""
    path = run_dir / LOCK_FILE
    try:
        owner = json.loads(path.read_text() or "{}")
        owner["heartbeat_age"] = max(0.0, time.time() - path.stat().st_mtime)
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def writer_alive(run_dir: Path) -> bool:
    """True when a process holds (or very recently held) the run's lock and is still alive.

    Same host: the owner pid must exist and its heartbeat be fresh; other hosts (a shared file
    system): the heartbeat must be younger than :data:`STALE_AFTER` seconds.
    """
    with _guard:
        if run_dir.resolve() in _held:
            return True
    owner = owner_of(run_dir)
    if not owner or owner.get("released") or owner["heartbeat_age"] > STALE_AFTER:
        return False
    if owner.get("host") == socket.gethostname():
        return isinstance(owner.get("pid"), int) and _pid_alive(owner["pid"])
    return True


def describe_owner(owner: dict) -> str:
    """``pid 123 on host h since 2026-01-01T10:00:00 (heartbeat 2 s ago)``."""
    if not owner:
        return "another process"
    return (f"pid {owner.get('pid')} on host {owner.get('host')} since {owner.get('started')} "
            f"(heartbeat {owner.get('heartbeat_age', 0):.0f} s ago)")


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        with contextlib.suppress(OSError):
            os.utime(path)


@contextlib.contextmanager
def run_lock(run_dir: Path, run_id: str, *, wait: bool = False) -> Iterator[None]:
    """Hold the exclusive writer lock of ``run_dir`` inside the block.

    ``wait=False`` raises :class:`RunLockedError` naming the owner when another process or thread
    holds it; ``wait=True`` blocks until it is free. Nested use in the holding thread is free.
    """
    key = run_dir.resolve()
    with _guard:
        held = _held.get(key)
        if held is not None and held.thread == threading.get_ident():
            held.depth += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _guard:
                held.depth -= 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            owner = owner_of(run_dir)
            raise RunLockedError(
                f"run {run_id} is being trained by {describe_owner(owner)}; only one process "
                "may write a run. Wait for it (`--wait` on the CLI, `wait=True` in Python) or stop "
                "that process first.", owner) from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        held = _Held(fd, threading.get_ident())
        beat = threading.Thread(target=_heartbeat, args=(path, held.stop), daemon=True, name=f"heartbeat-{run_id}")
        with _guard:
            _held[key] = held
        beat.start()
        try:
            yield
        finally:
            held.stop.set()
            with _guard:
                _held.pop(key, None)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({**owner, "released": True}).encode(), 0)
    finally:
        os.close(fd)  # closing releases the flock
