"""Results of the experiment scripts: ``benchmarks/results/<stem>.md`` and ``.json``, each naming
the command line that produced it."""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that reproduces this run: ``python -m benchmarks.<module> ARGS``."""
    return f"python -m benchmarks.{module} " + " ".join(argv if argv is not None else sys.argv[1:])


def write_results(stem: str, markdown: list[str], data: dict) -> None:
    """Write ``<stem>.md`` (the lines) and ``<stem>.json`` (``data``) under results/; print the markdown."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(data, indent=1))
    (RESULTS / f"{stem}.md").write_text("\n".join(markdown))
    print("\n".join(markdown))


def first_reaching(steps: Sequence[int], values: Sequence[float], threshold: float = 0.95) -> int | None:
    """The first step whose value reaches ``threshold`` (None if none does)."""
    hit = np.flatnonzero(np.asarray(values) >= threshold)
    return int(np.asarray(steps)[hit[0]]) if hit.size else None
