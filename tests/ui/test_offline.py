"""The dashboard works offline and quietly: no page requests anything but its own server (no
Google Fonts, no CDN), and leaving pages logs no ``WebSocketClosedError`` on the server."""
from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest

from tests.ui.conftest import serving
from widgets.serve import PAGES

pytestmark = pytest.mark.ui


def test_pages_request_nothing_from_the_network_and_leave_quietly(ui_data, browser_page, tmp_path):
    page = browser_page
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url)
            if r.url.startswith("http") and urlparse(r.url).hostname not in ("127.0.0.1", "localhost") else None)
    with serving(ui_data, tmp_path) as url:
        for slug in [*PAGES, "runs"]:  # each page is left for the next one while it may still update
            page.goto(f"{url}/{slug}", wait_until="load")
            page.get_by_text("Data root:").wait_for()  # the page rendered (not an error page)
            page.wait_for_timeout(1000)
        page.close()
        time.sleep(1)  # the last page's socket closes
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert not outside, f"requests to the network: {sorted(set(outside))}"
    assert "WebSocketClosedError" not in log and "Traceback" not in log, log[-3000:]
