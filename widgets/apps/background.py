"""Background jobs of dashboard pages: one bounded pool for every session, the newest request wins,
a closed session cancels its work.

The server owns one :class:`JobPool` (as many workers as cores) and hands it to every page it
builds, so twenty open pages queue their computations on two cores instead of starting twenty.
A page owns one :class:`Background` per kind of work (training toy models, analysing a checkpoint,
computing Koopman spectra) and binds its ``busy`` parameter to the ``loading`` state of the panes
the work will fill (``loading=background.param.busy``). ``submit(fn, *args, on_done=draw)`` queues
``fn(*args)`` on the pool and calls ``draw(result)`` on the session's event loop, where widgets may
be changed; a failure is shown through ``error`` instead.

A request made while a job runs waits and replaces any request already waiting; the running job's
result is then dropped, since it no longer matches the controls. When the browser session closes
(or the pool closes), the waiting job is dropped, a queued one never starts, and a running job
that reports progress stops at its next report: long jobs call :meth:`Background.check` there,
which raises :class:`Cancelled`. Without a server session (tests, notebooks) ``on_done`` is called
in the worker thread; ``threaded=False`` runs jobs inline.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import panel as pn
import param
from panel.io.state import set_curdoc

Job = tuple[int, Callable[..., Any], tuple, Callable[[Any], None]]


class Cancelled(Exception):
    """Raised by :meth:`Background.check` in a job whose result nobody will see."""


class JobPool:
    """``workers`` threads shared by every page of a dashboard (default: one per core)."""

    def __init__(self, workers: int | None = None):
        workers = workers if workers is not None else max(1, os.cpu_count() or 1)
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.workers = workers
        self.closing = threading.Event()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="dashboard-job")

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if not self.closing.is_set():
            self._executor.submit(fn, *args)

    def close(self) -> None:
        """Drop queued jobs, ask running ones to stop (:meth:`Background.check`), end the threads."""
        self.closing.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


class Background(param.Parameterized):
    """Runs a page's jobs on a :class:`JobPool`, one at a time; ``busy`` and ``error`` report on them.

    ``pool``: the dashboard's shared pool (default: a one-thread pool of this page's own).
    """

    busy = param.Boolean(default=False, doc="A job is running or waiting")
    error = param.String(default="", doc="Message of the last job that failed ('' when it succeeded)")

    def __init__(self, *, pool: JobPool | None = None, threaded: bool = True, **params: Any):
        super().__init__(**params)
        self.threaded = threaded
        self._pool = pool if pool is not None else JobPool(1)
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._running = False  # a worker is taking this page's jobs (new requests wait for it)
        self._active = 0  # workers that have not yet delivered their result
        self._pending: Job | None = None
        self._generation = 0
        self._cancelled = threading.Event()
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            pn.state.on_session_destroyed(lambda _context: self.cancel())

    @property
    def cancelled(self) -> bool:
        """The session closed, or the pool did: no job of this page will be drawn any more."""
        return self._cancelled.is_set() or self._pool.closing.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` when the running job's result is no longer wanted (the session
        closed, the pool closed, or a newer request waits). Long jobs call it as they progress."""
        if self.cancelled or self._pending is not None:
            raise Cancelled("the page that asked for this work was closed or asked for something newer")

    def cancel(self) -> None:
        """Drop the waiting request and stop the running job at its next :meth:`check`."""
        with self._lock:
            self._cancelled.set()
            self._pending = None

    def submit(self, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None]) -> None:
        """Run ``fn(*args)`` in the background, then ``on_done(result)`` unless a newer job came."""
        with self._lock:
            if self.cancelled:
                return
            self._generation += 1
            job = (self._generation, fn, args, on_done)
            self.busy, self.error = True, ""
            if self.threaded:
                if self._running:
                    self._pending = job  # picked up by the running worker when it finishes
                else:
                    self._running, self._active = True, self._active + 1
                    self._pool.submit(self._work, job, pn.state.curdoc)
                return
        self._finish(job, *self._run(job))

    def wait(self, timeout: float | None = None) -> None:
        """Block until no job runs, waits or is being drawn (tests and notebooks), at most ``timeout`` s."""
        with self._done:
            self._done.wait_for(lambda: self._active == 0, timeout)

    @staticmethod
    def _run(job: Job) -> tuple[Any, str]:
        _, fn, args, _ = job
        try:
            return fn(*args), ""
        except Cancelled:
            return None, ""
        except Exception as exc:  # noqa: BLE001 - shown on the page: a worker thread must not die silently
            return None, f"{type(exc).__name__}: {exc}"

    def _work(self, job: Job, doc: Any) -> None:
        try:
            while True:
                result, error = (None, "") if self.cancelled else self._run(job)
                with self._lock:
                    if self._pending is None:
                        self._running = False
                        break
                    job, self._pending = self._pending, None  # the result just computed is stale
            if self.cancelled:
                return
            if doc is not None and doc.session_context is not None:
                with set_curdoc(doc):
                    pn.state.execute(lambda: self._finish(job, result, error), schedule=True)
            else:
                self._finish(job, result, error)
        finally:
            with self._done:
                self._active -= 1
                self._done.notify_all()

    def _finish(self, job: Job, result: Any, error: str) -> None:
        generation, _, _, on_done = job
        if generation != self._generation:
            return  # superseded by a request made after this job left the queue
        if error:
            self.error = error
        else:
            try:
                on_done(result)
            except Exception as exc:  # noqa: BLE001 - drawing failed: report it like a failed job
                self.error = f"{type(exc).__name__}: {exc}"
        self.busy = False
