"""Silence the "Task exception was never retrieved … WebSocketClosedError" reports of a left page.

Panel sends a session's document patches as tornado write tasks; when the browser leaves the page
while one is in flight, the task fails with ``WebSocketClosedError`` and, as nobody awaits it any
more, asyncio logs a traceback for a harmless, expected event. :func:`ignore_closed_sockets`
installs a loop exception handler that drops exactly those reports and passes everything else on.
"""
from __future__ import annotations

import asyncio
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError


def ignore_closed_sockets(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Install the handler on ``loop`` (default: the running loop; nothing without one). Idempotent."""
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
    previous = loop.get_exception_handler()
    if getattr(previous, "ignores_closed_sockets", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), (WebSocketClosedError, StreamClosedError)):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.ignores_closed_sockets = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
