"""The run browser in headless Chromium against a real ``workbench serve``."""
from __future__ import annotations

import time

import pytest

from tests.ui.plots import wait_for_points
from workbench.store import RunStore

pytestmark = pytest.mark.ui

def select_run(page, run_id: str) -> None:
    """Click the run's row in the runs table."""
    page.locator(".tabulator-row", has_text=run_id).first.click()


def test_runs_page_shows_curves_of_selected_run(server, browser_page, ui_data, ui_run_id):
    page = browser_page
    page.goto(server + "/")  # the index redirects to the run browser
    page.wait_for_url("**/runs**")
    page.locator(".tabulator-row", has_text=ui_run_id).first.wait_for()
    select_run(page, ui_run_id)
    n_steps = int(RunStore(ui_data).open(ui_run_id).metrics().sizes["step"])
    points = wait_for_points(page, lambda p: p.get("train_loss", 0) >= n_steps)
    # loss and accuracy plots, train and test, every recorded step
    assert {k: points[k] for k in ("train_loss", "test_loss", "train_acc", "test_acc")} == dict.fromkeys(
        ("train_loss", "test_loss", "train_acc", "test_acc"), n_steps)
    assert page.get_by_text(ui_run_id).count() >= 1
    assert not page.errors, page.errors


def test_runs_page_follows_a_live_run(server, browser_page, ui_data, live_run):
    """Start training in the background; the curves on the open page grow while it runs."""
    store = RunStore(ui_data)
    proc = live_run(ui_data, steps=4000, p=23, eval_every=10, checkpoint_every=2000, trajectory_every=1000)
    deadline = time.monotonic() + 40
    run_id = None
    while run_id is None and time.monotonic() < deadline:
        live = [r for r in store if r.state.get("status") == "running"]
        run_id = live[0].id if live else None
        assert proc.poll() is None, proc.log_path.read_text()
        time.sleep(0.3)
    assert run_id, "the background run never reported status 'running'"
    page = browser_page
    page.goto(f"{server}/runs")
    page.locator(".tabulator-row", has_text=run_id).first.wait_for()
    select_run(page, run_id)
    first = wait_for_points(page, lambda p: p.get("train_loss", 0) >= 1)["train_loss"]
    later = wait_for_points(page, lambda p: p.get("train_loss", 0) >= first + 3, timeout=25)["train_loss"]
    assert later > first
    assert proc.poll() is None, "the run finished before the page could watch it"
    assert page.get_by_text("live").count() >= 1
