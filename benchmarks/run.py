"""Run every benchmark and write ratio tables: ``python -m benchmarks.run [--quick] [--only NAME]``.

Writes ``benchmarks/results/<device>.json`` (all rows, machine info) and ``<device>.md`` (the ratio
table docs/performance.md is generated from).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_info, threadpool_limits

RESULTS = Path(__file__).parent / "results"
README = Path(__file__).parent.parent / "docs" / "performance.md"  # the page holding the full table
MARKERS = ("<!-- bench:start -->", "<!-- bench:end -->")


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0).replace(" ", "-")
    return f"cpu-{os.cpu_count()}core"


def discover() -> list[str]:
    return sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))


def row_key(row: dict) -> tuple[str, str, str, str]:
    """Identity of a result row: one comparison of one workload."""
    return row["module"], row["benchmark"], row["workload"], row["reference"]


def to_markdown(rows: list[dict], header: str) -> str:
    lines = [header, "", "| benchmark | workload | ours | reference | ours (s) | ref (s) | ratio (ref/ours) | load 1m |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['benchmark']} | {r['workload']} | {r['candidate']} | {r['reference']} | "
                     f"{r['t_candidate_s']:.4g} | {r['t_reference_s']:.4g} | **{r['ratio']:.2f}x** | {r['loadavg_1m']:.2f} |")
    notes = [f"- {r['benchmark']}: {r['notes']}" for r in rows if r.get("notes")]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def update_readme(table: str, readme: Path = README) -> bool:
    """Replace the table between ``MARKERS`` of ``readme`` (docs/performance.md) with ``table``; False if no markers."""
    text = readme.read_text()
    start, end = text.find(MARKERS[0]), text.find(MARKERS[1])
    if start < 0 or end < start:
        return False
    readme.write_text(text[: start + len(MARKERS[0])] + "\n" + table + text[end:])
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small workloads (smoke run)")
    parser.add_argument("--only", action="append", default=[], help="run only bench_<NAME> modules")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    args = parser.parse_args(argv)
    names = [n for n in discover() if not args.only or n.removeprefix("bench_") in args.only]
    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    with threadpool_limits(limits=args.threads):
        for name in names:
            print(f"[bench] {name} ...", flush=True)
            module = importlib.import_module(f"benchmarks.{name}")
            t0 = time.perf_counter()
            new = module.run(quick=args.quick)
            for r in new:
                r.setdefault("module", name)
            rows += new
            print(f"[bench] {name}: {len(new)} rows in {time.perf_counter() - t0:.1f}s", flush=True)
    device = device_name()
    info = {
        "device": device,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "threads": args.threads,
        "blas": [{k: i.get(k) for k in ("internal_api", "num_threads", "architecture")} for i in threadpool_info()],
        "quick": args.quick,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = device + ("-quick" if args.quick else "")
    existing = {}
    path = RESULTS / f"{stem}.json"
    if args.only and path.exists():  # merge a partial run into the previous table: the modules run replace theirs
        rerun = {r["module"] for r in rows}
        existing = {row_key(r): r for r in json.loads(path.read_text())["rows"] if r["module"] not in rerun}
    for r in rows:
        existing[row_key(r)] = r
    rows = sorted(existing.values(), key=lambda r: (r["module"], r["benchmark"]))
    path.write_text(json.dumps({"info": info, "rows": rows}, indent=1, default=str))
    header = f"## Benchmarks on {device} ({info['date']}, torch {info['torch']}, {args.threads} threads)"
    table = to_markdown(rows, header)
    (RESULTS / f"{stem}.md").write_text(table)
    if not args.quick and update_readme(table):
        print(f"[bench] {README.relative_to(README.parents[1])} table updated from {stem}.md")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
