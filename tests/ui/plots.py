"""What the browser draws: every plotly figure of a page, read from plotly.js's graph divs.

Panel renders panes inside Bokeh's shadow roots, so the walk descends into them. Shared by the
browser tests (``tests/ui``).
"""
from __future__ import annotations

import time

# Every plotly figure on the page (Bokeh's shadow roots too), described by what a reader sees:
# trace names and point counts, shaded bands, annotation boxes, axis ranges and titles. Each
# figure's graph div gets ``data-figure=<index>`` so a locator can screenshot it.
FIGURES_JS = """() => {
  const found = [];
  const walk = root => {
    root.querySelectorAll('.js-plotly-plot').forEach(gd => found.push(gd));
    root.querySelectorAll('*').forEach(el => { if (el.shadowRoot) walk(el.shadowRoot); });
  };
  walk(document);
  const list = a => (a == null ? null : Array.from(a, r => (r != null && typeof r === 'object' ? Array.from(r) : r)));
  return found.map((gd, i) => {
    gd.setAttribute('data-figure', String(i));
    const L = gd._fullLayout || {};
    const axes = Object.keys(L).filter(k => /^[xy]axis\\d*$/.test(k)).map(k => ({
      name: k, type: L[k].type, range: L[k].range, title: (L[k].title || {}).text || ''}));
    const boxes = Array.from(gd.querySelectorAll('.annotation')).map(a => {
      const r = a.getBoundingClientRect(); return {text: a.textContent, x0: r.left, x1: r.right, y0: r.top, y1: r.bottom};
    });
    return {index: i, title: ((L.title || {}).text) || '', axes, boxes,
            bands: (L.shapes || []).filter(s => s.type === 'rect').length,
            traces: (gd.data || []).map(t => ({name: t.name, type: t.type, x: list(t.x), y: list(t.y), z: list(t.z),
                                               customdata: list(t.customdata)}))};
  });
}"""


def figures(page) -> list[dict]:
    return page.evaluate(FIGURES_JS)


def plot_points(page) -> dict[str, int]:
    """Trace name → number of points, over every plotly figure on the page."""
    out: dict[str, int] = {}
    for fig in figures(page):
        for trace in fig["traces"]:
            out[trace["name"]] = max(out.get(trace["name"], 0), len(trace["x"] or []))
    return out


def wait_for_points(page, predicate, timeout: float = 30.0) -> dict[str, int]:
    """Poll :func:`plot_points` until ``predicate(points)`` holds; fail with the last counts."""
    deadline = time.monotonic() + timeout
    points: dict[str, int] = {}
    while time.monotonic() < deadline:
        points = plot_points(page)
        if predicate(points):
            return points
        page.wait_for_timeout(300)
    raise AssertionError(f"plots never satisfied the condition; last trace point counts: {points}")
