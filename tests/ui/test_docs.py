"""The documentation site: built with mkdocs into a temp dir, its index and a lens page open in Chromium.

The notebooks render from the harness's executed copies (``build/notebooks/``, written by
tests/notebooks, which run first); the plot check is skipped when no executed copy exists yet.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ui.conftest import REPO, child_env

EXECUTED = Path(os.environ.get("WORKBENCH_EXECUTED_NOTEBOOKS", REPO / "build" / "notebooks"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).parent / "mkdocs"
    done = subprocess.run([str(mkdocs), "build", "--quiet", "--site-dir", str(out)], cwd=REPO,
                          env=child_env(NO_MKDOCS_2_WARNING="1"), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_index_and_a_lens_page_render(chromium_browser, site):
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800}, offline=True)
    page = context.new_page()
    try:
        page.goto((site / "index.html").as_uri())
        assert "how neural networks learn" in page.inner_text("article")
        page.goto((site / "grokking" / "index.html").as_uri())
        assert page.locator("article h1").inner_text().startswith("Grokking progress measures")
        assert page.locator("article img[src*='lens-grokking']").count() == 1
        page.goto((site / "api" / "grokking" / "index.html").as_uri())
        assert page.locator("article").get_by_text("key_frequencies").count() >= 1
    finally:
        context.close()


def test_rendered_notebook_shows_its_plot(chromium_browser, site):
    executed = EXECUTED / "01_grokking.ipynb"
    if not executed.exists() or executed.stat().st_mtime < (REPO / "notebooks" / "01_grokking.ipynb").stat().st_mtime:
        pytest.skip("no fresh executed copy of 01_grokking in build/notebooks (run tests/notebooks first)")
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800}, offline=True)
    page = context.new_page()
    try:
        page.goto((site / "notebooks" / "01_grokking" / "index.html").as_uri())
        page.wait_for_selector("body[data-plotted=true]", timeout=60_000)
        assert page.locator(".js-plotly-plot").count() >= 3
        assert page.evaluate("document.querySelector('.js-plotly-plot')._fullData.length") >= 1
    finally:
        context.close()
