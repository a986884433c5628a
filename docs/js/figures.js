// Draws the plotly figures of rendered notebooks (script.wb-figure → its target div), the same
// markup `workbench report` writes (widgets/report.py). plotly.js is served by the site itself.
document.addEventListener("DOMContentLoaded", async () => {
  if (typeof Plotly === "undefined") return;
  for (const el of document.querySelectorAll("script.wb-figure")) {
    const target = document.getElementById(el.dataset.target);
    if (!target || target.classList.contains("js-plotly-plot")) continue;
    const fig = JSON.parse(el.textContent);
    await Plotly.newPlot(target, fig.data, fig.layout || {}, {responsive: true, displaylogo: false});
  }
  document.body.dataset.plotted = "true";
});
