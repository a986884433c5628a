"""One background job at a time for a dashboard page: the server never blocks, the newest request wins.

A page owns one :class:`Background` per kind of work (training toy models, analysing a checkpoint,
computing Koopman spectra) and binds its ``busy`` parameter to the ``loading`` state of the panes
the work will fill (``loading=background.param.busy``). ``submit(fn, *args, on_done=draw)`` runs
``fn(*args)`` in a worker thread and calls ``draw(result)`` on the session's event loop, where
widgets may be changed; a failure is shown through ``error`` instead.

A request made while a job runs waits and replaces any request already waiting; the running job's
result is then dropped, since it no longer matches the controls. Without a server session (tests,
notebooks) ``on_done`` is called in the worker thread; ``threaded=False`` runs jobs inline.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import panel as pn
import param
from panel.io.state import set_curdoc

Job = tuple[int, Callable[..., Any], tuple, Callable[[Any], None]]


class Background(param.Parameterized):
    """Runs a page's jobs in one worker thread; ``busy`` and ``error`` report on them."""

    busy = param.Boolean(default=False, doc="A job is running or waiting")
    error = param.String(default="", doc="Message of the last job that failed ('' when it succeeded)")

    def __init__(self, *, threaded: bool = True, **params: Any):
        super().__init__(**params)
        self.threaded = threaded
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending: Job | None = None
        self._generation = 0

    def submit(self, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None]) -> None:
        """Run ``fn(*args)`` in the background, then ``on_done(result)`` unless a newer job came."""
        with self._lock:
            self._generation += 1
            job = (self._generation, fn, args, on_done)
            self.busy, self.error = True, ""
            if not self.threaded:
                self._pending = None
            elif self._thread is not None:
                self._pending = job  # picked up by the running worker when it finishes
                return
            else:
                self._thread = threading.Thread(target=self._work, args=(job, pn.state.curdoc), daemon=True,
                                                name=f"background-{fn.__name__}")
                self._thread.start()
                return
        self._finish(job, *self._run(job))

    def wait(self, timeout: float | None = None) -> None:
        """Block until no job runs or waits (tests and notebooks); ``timeout`` in seconds per job."""
        while (thread := self._thread) is not None:
            thread.join(timeout)
            if thread.is_alive():
                return

    @staticmethod
    def _run(job: Job) -> tuple[Any, str]:
        _, fn, args, _ = job
        try:
            return fn(*args), ""
        except Exception as exc:  # noqa: BLE001 - shown on the page: a worker thread must not die silently
            return None, f"{type(exc).__name__}: {exc}"

    def _work(self, job: Job, doc: Any) -> None:
        while True:
            result, error = self._run(job)
            with self._lock:
                if self._pending is None:
                    self._thread = None
                    break
                job, self._pending = self._pending, None  # the result just computed is stale
        if doc is not None and doc.session_context is not None:
            with set_curdoc(doc):
                pn.state.execute(lambda: self._finish(job, result, error), schedule=True)
        else:
            self._finish(job, result, error)

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
