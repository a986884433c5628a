"""A `workbench report` file opened in headless Chromium with no network: the figures draw, their data present."""
from __future__ import annotations

import subprocess

from tests.ui.conftest import WORKBENCH, child_env


def test_report_opens_offline_and_draws_every_figure(chromium_browser, ui_data, ui_run_id, tmp_path):
    out = tmp_path / "report.html"
    done = subprocess.run([WORKBENCH, "report", ui_run_id, "--out", str(out), "--data", str(ui_data)],
                          env=child_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    n_figures = out.read_text().count('class="wb-figure"')
    assert n_figures >= 3

    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800}, offline=True)
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(out.as_uri())
        page.wait_for_selector("body[data-plotted]", timeout=60_000)
        assert page.evaluate("document.body.dataset.plotted") == "true", page.inner_text("body")[:2000]
        assert page.locator(".js-plotly-plot").count() == n_figures
        # the loss curve is drawn from its data: points in plotly's full data and an SVG path on the page
        points = page.evaluate("document.querySelector('#curves .js-plotly-plot')._fullData[0].y.length")
        assert points > 5
        assert page.locator("#curves .js-plotly-plot .scatterlayer path.js-line").count() >= 2
        assert page.locator("#koopman .js-plotly-plot").count() >= 1
    finally:
        context.close()
    assert not errors, errors
    assert [u for u in requests if not u.startswith("file://")] == []
