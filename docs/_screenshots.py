"""``make screenshots``: the lens pictures of the README and the docs, from headless Chromium.

Trains three small runs into a temporary store (an MLP on a+b mod 53 with checkpoints and a
trajectory, a one-layer transformer with the grokking probe, a grid of toy models), writes their
``workbench report`` files, opens them in Debian's Chromium through Playwright with the network
off, and screenshots one figure per lens into ``docs/images/lens-<lens>.png``. Nothing here draws
a figure of its own: the pictures are the report's figures, which are the dashboard's and the
notebooks' (``widgets/plots``). Takes about two minutes on two cores.

    python docs/_screenshots.py [--out docs/images]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM") or "/usr/bin/chromium"
# lens → (CSS selector of the figure in the report, viewport width, figure height)
SHOTS = {
    "grokking": ("#grokking .wb-plot >> nth=1", 1000, 560),      # progress measures
    "superposition": ("#superposition .wb-plot >> nth=0", 1000, 420),  # WᵀW and b across sparsity
    "spectrum": ("#spectrum .wb-plot >> nth=2", 1000, 420),      # alpha per layer (after two ESDs)
    "koopman": ("#koopman .wb-plot >> nth=1", 1000, 460),        # eigenvalues of the last window
}


def make_runs(root: Path) -> dict[str, str]:
    """Train the three runs; return lens → run id."""
    sys.path.insert(0, str(REPO))
    from workbench.grokking import GrokkingConfig, ModularConfig, train_grokking, train_modular
    from workbench.store import RunStore
    from workbench.superposition.run import ToyRunConfig, train_toy_run

    store = RunStore(root)
    mlp = train_modular(ModularConfig(p=53, steps=1500, checkpoint_every=500, trajectory_every=25), store)
    grok = train_grokking(GrokkingConfig(p=47, frac=0.4, steps=1500, probe_every=50, checkpoint_every=500,
                                         trajectory_every=50), store)
    toy = train_toy_run(ToyRunConfig(n_features=5, n_hidden=2, sparsity=[0.0, 0.7, 0.9, 0.97, 0.99], steps=4000,
                                     n_inits=2), store)
    return {"grokking": grok.id, "superposition": toy.id, "spectrum": mlp.id, "koopman": mlp.id}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from widgets.report import write_report
    from workbench.store import RunStore

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        ids = make_runs(root)
        reports = {}
        for run_id in sorted(set(ids.values())):
            reports[run_id], _ = write_report(RunStore(root), run_id, Path(tmp) / f"{run_id}.html")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            for lens, (selector, width, height) in SHOTS.items():
                context = browser.new_context(viewport={"width": width, "height": 900}, offline=True,
                                              device_scale_factor=1)
                page = context.new_page()
                page.goto(reports[ids[lens]].as_uri())
                page.wait_for_selector("body[data-plotted=true]", timeout=60_000)
                figure = page.locator(selector)
                figure.evaluate(f"el => Plotly.relayout(el, {{height: {height}}})")
                out = args.out / f"lens-{lens}.png"
                figure.screenshot(path=str(out))
                print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
                context.close()
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
