"""Browser-test fixtures: a real ``workbench serve`` subprocess and a headless Chromium page.

Chromium is Debian's (``apt-get install chromium``; ``make test`` installs it), driven by
Playwright's sync API without any browser download. Point ``WORKBENCH_CHROMIUM`` at another
binary to override ``/usr/bin/chromium``. Every test here is marked ``ui`` and skipped with a
clear reason when the binary is missing.

Fixtures
--------
ui_data       session: a temp data root holding one small finished modular run.
ui_run_id     session: the id of that run.
server        session: base URL ``http://127.0.0.1:PORT`` of ``workbench serve --data <ui_data>``.
browser_page  function: a fresh Playwright page (1280×800) in a session-wide Chromium.
live_run      function: ``live_run(data, steps=..., **options) -> subprocess.Popen`` starting
              ``workbench train modular`` in the background (killed at teardown).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WORKBENCH = str(VENV_BIN / "workbench") if (VENV_BIN / "workbench").exists() else str(REPO / ".venv/bin/workbench")
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SERVER_TIMEOUT = 60.0


def pytest_collection_modifyitems(config, items):
    """Mark every test in tests/ui as ``ui``; skip them all when chromium is missing."""
    here = Path(__file__).parent
    missing = not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM))
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.ui)
            if missing:
                item.add_marker(pytest.mark.skip(
                    reason=f"chromium not found at {CHROMIUM!r}: install it (`apt-get install chromium` or "
                           "`make chromium`) or set WORKBENCH_CHROMIUM to a chromium binary"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: one thread, no progress bars, the repo importable."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    """Poll ``url`` until it answers (any HTTP status); fail with the process log otherwise."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with code {proc.returncode} before {url} answered:\n"
                               f"{log.read_text(errors='replace')[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # the server answered, even if with an error page
        except OSError as exc:
            last = exc
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s (last error: {last}); server output:\n"
                       f"{log.read_text(errors='replace')[-4000:]}")


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate ``proc`` (SIGTERM, then SIGKILL after ``grace`` seconds)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)


@pytest.fixture(scope="session")
def ui_data(tmp_path_factory) -> Path:
    """A temp data root with one small finished modular run (p=23, 200 steps)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    from workbench.grokking.modular_run import ModularConfig, train_modular
    from workbench.store import RunStore

    root = tmp_path_factory.mktemp("ui_runs")
    train_modular(ModularConfig(p=23, steps=200, checkpoint_every=100), RunStore(root), progress=False)
    return root


@pytest.fixture(scope="session")
def ui_run_id(ui_data) -> str:
    from workbench.store import RunStore

    return RunStore(ui_data).ids()[0]


@contextmanager
def serving(data: Path, log_dir: Path) -> Iterator[str]:
    """``workbench serve --data <data>`` on a free port of 127.0.0.1: yields its base URL, then stops it."""
    port = free_port()
    log = log_dir / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([WORKBENCH, "serve", "--data", str(data), "--port", str(port), "--no-show"],
                                stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/", proc, SERVER_TIMEOUT, log)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def server(ui_data, tmp_path_factory):
    """Base URL of ``workbench serve --data <ui_data>`` on a free port of 127.0.0.1."""
    with serving(ui_data, tmp_path_factory.mktemp("server")) as url:
        yield url


@pytest.fixture(scope="session")
def chromium_browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium_browser):
    """A fresh page (1280×800, 30 s default timeout); console errors are kept in ``page.errors``."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


@pytest.fixture
def live_run(tmp_path):
    """Start ``workbench train modular --data DATA --steps N ...`` in the background.

    ``live_run(data, steps=3000, p=23, eval_every=10)`` returns the ``Popen``; extra keyword
    options become ``--key value`` flags. At teardown the processes are terminated and the runs
    they created are deleted, so a session-wide data root (``ui_data``) is left as it was found.
    """
    from workbench.store import RunStore

    procs: list[subprocess.Popen] = []
    before: dict[Path, set[str]] = {}

    def _start(data: str | Path, steps: int = 3000, **options) -> subprocess.Popen:
        before.setdefault(Path(data), set(RunStore(data).ids()))
        args = [WORKBENCH, "train", "modular", "--data", str(data), "--steps", str(steps), "--no-progress"]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        log_path = tmp_path / f"train-{len(procs)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO)
        proc.log_path = log_path
        procs.append(proc)
        return proc

    yield _start
    for proc in procs:
        stop(proc)
    for data, ids in before.items():
        store = RunStore(data)
        for run_id in set(store.ids()) - ids:
            store.delete(run_id)
