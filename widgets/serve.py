"""The multi-page Panel dashboard behind ``workbench serve``.

One route per page (``/runs``, ``/grokking``, ...), each a ``FastListTemplate`` whose sidebar links
to every page; ``/`` redirects to the run browser. Pages are modules listed in :data:`PAGES`, each
exposing ``page(store, jobs) -> panel viewable``; they are imported when a browser opens them, so a
page that fails to import shows its error instead of taking the whole dashboard down. ``jobs`` is
the server's one :class:`~widgets.apps.background.JobPool`: every session's background work shares
its bounded set of threads.

Bound to anything but the loopback, the dashboard requires a token (Panel's basic auth: any user
name, the token as password), generated and printed at start like Jupyter's unless given with
``token=`` / ``$WORKBENCH_TOKEN``: whoever reaches the port otherwise sees every run and the data root.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import secrets
import socket
import sys
import traceback
from collections.abc import Callable

import panel as pn

from widgets.apps.background import JobPool
from widgets.apps.sockets import ignore_closed_sockets
from widgets.apps.theme import OfflineFast
from workbench.store import RunStore

#: URL slug → module exposing ``page(store)``. Lens pages add one line each.
PAGES: dict[str, str] = {
    "runs": "widgets.apps.runs",
    "grokking": "widgets.apps.grokking",
    "superposition": "widgets.apps.superposition",
    "koopman": "widgets.apps.koopman",
    "spectrum": "widgets.apps.spectrum",
    "sweeps": "widgets.apps.sweeps",
}

TITLE = "workbench"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
EXTENSIONS = ("plotly", "tabulator")


def available_pages(pages: dict[str, str] | None = None) -> dict[str, str]:
    """The entries of ``pages`` (default :data:`PAGES`) whose module can be found on the path."""
    pages = PAGES if pages is None else pages
    return {slug: mod for slug, mod in pages.items() if importlib.util.find_spec(mod) is not None}


def nav(pages: dict[str, str], current: str) -> pn.pane.Markdown:
    """Sidebar navigation: one link per page, the current one in bold."""
    lines = [f"- **{slug.capitalize()}**" if slug == current else f"- [{slug.capitalize()}](./{slug})"
             for slug in pages]
    return pn.pane.Markdown("\n".join(lines), sizing_mode="stretch_width")


def render_page(store: RunStore, slug: str, module: str, jobs: JobPool) -> pn.viewable.Viewable:
    """Import ``module`` and call its ``page(store, jobs)``; on failure, a pane naming the error.

    The browser gets the error's type and message (a damaged run names itself there); the
    traceback, with the server's paths, goes to the server's log only.
    """
    try:
        return importlib.import_module(module).page(store, jobs)
    except Exception as exc:  # noqa: BLE001 - a broken page must not take the dashboard down: say why
        print(f"the {slug} page failed to load:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        return pn.pane.Alert(f"**The {slug} page failed to load**: {type(exc).__name__}: {exc}\n\n"
                             "(the traceback is in the server's log)", alert_type="danger")


def page_factory(store: RunStore, slug: str, pages: dict[str, str],
                 jobs: JobPool) -> Callable[[], pn.template.BaseTemplate]:
    """A function building a fresh templated page per browser session (what ``pn.serve`` wants)."""

    def build() -> pn.template.BaseTemplate:
        ignore_closed_sockets()  # a page left mid-update is not an error worth a traceback
        return pn.template.FastListTemplate(
            title=slug.capitalize(), site=TITLE, sidebar=[nav(pages, slug), pn.pane.Markdown(
                f"Data root: `{store.root}`", styles={"font-size": "0.8em"})],
            main=[render_page(store, slug, pages[slug], jobs)], sidebar_width=220, theme_toggle=False,
            design=OfflineFast)

    return build


def build_app(store: RunStore, pages: dict[str, str] | None = None,
              jobs: JobPool | None = None) -> dict[str, Callable]:
    """Routes for ``pn.serve``: slug → a function returning that page (one route per page).

    Parameters
    ----------
    store : RunStore
        The run root every page reads.
    pages : dict, optional
        Slug → module path; default :data:`PAGES` restricted to modules that exist.
    jobs : JobPool, optional
        The pool every page's background work shares (default: a new one, one thread per core).
    """
    if not isinstance(store, RunStore):
        raise TypeError(f"store must be a workbench.store.RunStore, got {type(store).__name__}")
    pages = available_pages(pages)
    if not pages:
        raise ValueError("no dashboard pages available: PAGES lists no importable module")
    pn.extension(*EXTENSIONS, notifications=True)
    jobs = jobs if jobs is not None else JobPool()
    return {slug: page_factory(store, slug, pages, jobs) for slug in pages}


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def dashboard_token(host: str, token: str | None = None) -> str | None:
    """The token the dashboard requires: ``token``, else ``$WORKBENCH_TOKEN``, else a new random
    one when ``host`` is not the loopback; None (no login) on the loopback without either."""
    token = token or os.environ.get("WORKBENCH_TOKEN") or None
    if token is None and host not in LOOPBACK:
        token = secrets.token_urlsafe(24)
    if token is not None and len(token) < 16:
        raise ValueError("the dashboard token must be at least 16 characters (or leave it out to get a random one)")
    return token


def serve_dashboard(store: RunStore, port: int = 5006, host: str = "127.0.0.1", show: bool = False,
                    *, start: bool = True, token: str | None = None):
    """Serve the dashboard on ``http://host:port`` (blocking when ``start``); prints the URL.

    ``port=0`` picks a free port. Only ``host`` is bound (127.0.0.1 by default: local only); browser
    websockets are accepted from that host, plus ``localhost`` when bound to the loopback. Any other
    host requires a login with the token of :func:`dashboard_token` (printed with the URL).
    Every session's background work shares one :class:`JobPool` of one thread per core.
    Returns the Panel/Bokeh server (useful with ``start=False``).
    """
    import tornado.web

    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be an interface address such as '127.0.0.1', got {host!r}")
    token = dashboard_token(host, token)
    jobs = JobPool()
    routes = build_app(store, jobs=jobs)
    port = port or _free_port(host)
    origins = [f"{host}:{port}"]
    if host in ("127.0.0.1", "localhost", "::1"):
        origins += [f"localhost:{port}", f"127.0.0.1:{port}"]
    first = "runs" if "runs" in routes else next(iter(routes))
    url = f"http://{'localhost' if host in ('0.0.0.0', '::') else host}:{port}/{first}"
    print(f"workbench dashboard: {url}  (pages: {', '.join(routes)}; data: {store.root}; Ctrl-C to stop)",
          flush=True)
    auth = {}
    if token is not None:
        auth = {"basic_auth": token, "cookie_secret": secrets.token_urlsafe(32)}
        print(f"login required: any user name, password (token) {token}", flush=True)
    try:
        return pn.serve(routes, address=host, port=port, show=show, start=start, title=TITLE,
                        websocket_origin=sorted(set(origins)), threaded=False, verbose=False,
                        extra_patterns=[(r"/", tornado.web.RedirectHandler, {"url": f"/{first}", "permanent": False})],
                        **auth)
    finally:
        if start:  # the server has stopped: its pages' queued and running work stops too
            jobs.close()
