"""Dashboard security: a token off the loopback, and no page load that starts work."""
from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from widgets.apps import superposition
from widgets.serve import dashboard_token
from workbench.store import RunStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_token_rules(monkeypatch):
    monkeypatch.delenv("WORKBENCH_TOKEN", raising=False)
    assert dashboard_token("127.0.0.1") is None and dashboard_token("localhost") is None
    a, b = dashboard_token("0.0.0.0"), dashboard_token("192.168.1.5")
    assert len(a) >= 32 and a != b  # random per start
    monkeypatch.setenv("WORKBENCH_TOKEN", "x" * 20)
    assert dashboard_token("0.0.0.0") == "x" * 20 and dashboard_token("127.0.0.1") == "x" * 20
    with pytest.raises(ValueError, match="at least 16 characters"):
        dashboard_token("0.0.0.0", "short")


def test_an_exposed_dashboard_refuses_requests_without_its_printed_token(tmp_path):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORKBENCH_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--host", "0.0.0.0", "--port", str(port),
                             "--data", str(tmp_path), "--no-show"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    try:
        token = None
        deadline = time.time() + 90
        while token is None and time.time() < deadline:
            line = proc.stdout.readline()
            match = re.search(r"password \(token\) (\S+)", line)
            token = match.group(1) if match else None
        assert token, "serve printed no token"
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.build_opener(NoRedirect).open(base + "/login", timeout=5)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as refused:  # no cookie: sent to the login page
            urllib.request.build_opener(NoRedirect).open(base + "/runs", timeout=30)
        assert refused.value.code in (302, 401, 403) and "login" in refused.value.headers.get("Location", "/login")
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with pytest.raises(urllib.error.HTTPError):  # a wrong token does not log in
            urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(jar)).open(
                base + "/login", urllib.parse.urlencode({"username": "me", "password": "wrong" * 4}).encode(), timeout=30)
        assert not any(c.name == "user" for c in jar)
        opener.open(base + "/login", urllib.parse.urlencode({"username": "me", "password": token}).encode(),
                    timeout=30)
        assert any(c.name == "user" for c in jar)
        page = opener.open(base + "/runs", timeout=60)
        assert page.status == 200 and b"bokeh" in page.read().lower()
    finally:
        proc.terminate()
        proc.wait(30)


def test_opening_the_superposition_page_starts_no_work(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(superposition, "train_toy_grid", lambda *a, **k: calls.append("train"))
    monkeypatch.setattr(superposition, "phase_diagram", lambda *a, **k: calls.append("phase"))
    store = RunStore(tmp_path)
    superposition.page(store).get_root()  # what a GET of /superposition builds and renders
    time.sleep(0.5)
    assert calls == [] and store.artifacts(superposition.PHASE_KIND) == [] and list(tmp_path.iterdir()) == []
    page = superposition.SuperpositionPage(store, steps=100, threaded=False)
    page.param.trigger("train")  # the explicit action trains
    assert calls == ["train"]
