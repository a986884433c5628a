"""MkDocs hooks (``hooks:`` in mkdocs.yml): pages whose sources live outside ``docs/``.

- ``notebooks/*.ipynb``: each notebook of ``notebooks/``, rendered by mkdocs-jupyter. The executed
  copy that the papermill harness (``tests/notebooks/conftest.py``) leaves in ``build/notebooks/``
  is used when it is at least as new as the source, so the site shows the outputs of the last test
  run; otherwise (a fresh clone, or a notebook edited since) the unexecuted source is shown. Plotly
  outputs get an HTML form (:func:`widgets.report.add_plotly_html`) drawn by ``js/figures.js``.
  A notebook missing from the ``nav`` of mkdocs.yml is appended to its "Notebooks" section.
- ``js/plotly.min.js``: the plotly.js bundled with plotly.py, so the site draws figures offline.
- ``images/*``: figures written by the benchmarks (``benchmarks/results/*.png``).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
EXECUTED = Path(os.environ.get("WORKBENCH_EXECUTED_NOTEBOOKS", REPO / "build" / "notebooks"))
PREPARED = REPO / "build" / "docs-notebooks"   # a source dir of its own: pages notebooks/<name>.ipynb
EXTRA = {"images/scaling.png": REPO / "benchmarks" / "results" / "scaling.png"}
log = logging.getLogger("mkdocs.hooks.workbench")


def notebook_source(source: Path) -> Path:
    """The executed copy of ``source`` if the harness left one at least as new, else ``source``."""
    executed = EXECUTED / source.name
    if executed.exists() and executed.stat().st_mtime >= source.stat().st_mtime:
        return executed
    return source


def prepare(source: Path) -> Path:
    """A copy of the notebook with HTML forms of its plotly outputs, under ``build/``."""
    from widgets.report import add_plotly_html

    nb = json.loads(source.read_text(encoding="utf-8"))
    n = add_plotly_html(nb, prefix=f"nb-{source.stem}")
    (PREPARED / "notebooks").mkdir(parents=True, exist_ok=True)
    out = PREPARED / "notebooks" / source.name
    out.write_text(json.dumps(nb), encoding="utf-8")
    log.info("notebook %s from %s (%d figures)", source.name, source.relative_to(REPO) if source.is_relative_to(REPO)
             else source, n)
    return out


def on_files(files, config):
    from mkdocs_jupyter.plugin import NotebookFile

    jupyter = "mkdocs-jupyter" in config.plugins
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        prepare(notebook_source(nb))
        file = File(f"notebooks/{nb.name}", str(PREPARED), config["site_dir"], config["use_directory_urls"])
        files.append(NotebookFile(file, **config) if jupyter else file)
    from widgets.report import plotly_js_path

    files.append(File.generated(config, "js/plotly.min.js", abs_src_path=str(plotly_js_path())))
    for uri, path in EXTRA.items():
        if path.exists():
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_nav(nav, config, files):
    """Append notebooks that mkdocs.yml's nav does not list to its "Notebooks" section."""
    section = next((item for item in nav.items if getattr(item, "title", None) == "Notebooks"), None)
    if section is None:
        return nav
    listed = {page.file.src_uri for page in nav.pages}
    for file in files.documentation_pages():
        if file.src_uri.startswith("notebooks/") and file.src_uri not in listed and file.page is not None:
            file.page.parent = section
            section.children.append(file.page)
            nav.pages.append(file.page)
            log.info("notebook %s added to the nav", file.src_uri)
    return nav
