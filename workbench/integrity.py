"""Checksums of what a run stores beside its checkpoints: metric versions and trajectory rows.

Metric versions: ``<group>/v000007.manifest.json``.

Each version directory of a metric group (``metrics.zarr/<group>/v000007/``) is complete only once
its manifest ``v000007.manifest.json`` — the sha256 of every file in the directory — is written,
after the zarr data and before ``HEAD`` moves to it (beside the directory, not in it, so zarr
sees only its own files). A reader verifies the manifest first, so a lost or damaged chunk is
reported instead of being read as the zarr fill value (NaN or 0). Versions written before
manifests existed (no version of the group has one) are read unverified.

Trajectory rows: ``traj.zarr/crc`` holds, per row and per stored column chunk, the CRC-32 of the
row's float32 bytes; :func:`verified_rows` checks each block as it is read, so a lost chunk (read as
the fill value 0) or a changed one raises instead of entering an analysis.
"""
from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from workbench.artifacts import atomic_write_json
from workbench.checkpoint_io import sha256_file

MANIFEST = ".manifest.json"  # suffix of a version's manifest file, beside its directory
VERSION = re.compile(r"^v\d{6}$")


class RunDamagedError(RuntimeError):
    """A file of a run is missing, unreadable or fails its checksum; the message names it and what to do."""


def row_crcs(row: np.ndarray, width: int) -> np.ndarray:
    """CRC-32 of each ``width``-column chunk of one float32 row → uint32 (n_chunks,)."""
    return np.array([zlib.crc32(np.ascontiguousarray(row[c:c + width]).tobytes())
                     for c in range(0, row.size, width)], dtype=np.uint32)


def verified_rows(lazy: Any, crc: np.ndarray, steps: np.ndarray, width: int, run_id: str) -> Any:
    """``lazy`` (a dask ``(step, param)`` array in blocks of whole column chunks) that checks each
    block against ``crc`` (rows, column chunks) when it is computed."""
    def check(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        if block_info is None:  # dask's metadata probe
            return block
        (r0, _), (c0, c1) = block_info[0]["array-location"]
        got = np.array([zlib.crc32(np.ascontiguousarray(r).tobytes()) for r in block], dtype=np.uint32)
        bad = np.flatnonzero(got != crc[r0:r0 + len(block), c0 // width])
        if bad.size:
            raise RunDamagedError(
                f"run {run_id}: trajectory rows at steps {steps[r0 + bad][:5].tolist()} (params {c0}..{c1 - 1}) "
                "are missing or damaged (CRC mismatch); `workbench runs check` says what else is affected")
        return block

    return lazy.map_blocks(check, dtype=lazy.dtype)


def version_dirs(gdir: Path) -> list[str]:
    """Names of the well-formed version directories of a metric group, oldest first."""
    return sorted(p.name for p in gdir.iterdir() if VERSION.match(p.name) and p.is_dir()) if gdir.is_dir() else []


def manifest_path(vdir: Path) -> Path:
    """``<group>/v000007.manifest.json`` for ``vdir = <group>/v000007``."""
    return vdir.with_name(vdir.name + MANIFEST)


def write_manifest(vdir: Path) -> None:
    """Record the sha256 of every file under ``vdir`` (relative paths) in its manifest."""
    files = sorted(f for f in vdir.rglob("*") if f.is_file())
    atomic_write_json(manifest_path(vdir), {f.relative_to(vdir).as_posix(): sha256_file(f) for f in files})


def has_manifest(vdir: Path) -> bool:
    """True when the version directory `vdir` has its manifest (its write completed)."""
    return manifest_path(vdir).is_file()


def manifest_problems(vdir: Path) -> list[str]:
    """What is wrong with a version directory: missing/unreadable manifest, missing or changed files."""
    try:
        manifest = json.loads(manifest_path(vdir).read_text())
    except (OSError, ValueError) as exc:
        return [f"its manifest {manifest_path(vdir).name} is missing or unreadable ({exc.__class__.__name__})"]
    if not isinstance(manifest, dict):
        return [f"its manifest {manifest_path(vdir).name} is not a JSON object"]
    problems = []
    for rel, digest in manifest.items():
        f = vdir / rel
        if ".." in Path(rel).parts or not f.is_file():
            problems.append(f"file {rel} is missing")
        elif sha256_file(f) != digest:
            problems.append(f"file {rel} is damaged (sha256 mismatch)")
    return problems


def read_head(gdir: Path) -> tuple[str | None, str]:
    """``(version, problem)``: the version ``HEAD`` names if it is a version directory of this
    group, else ``(None, why not)`` — a HEAD naming anything else (``../..``) is never followed."""
    try:
        head = (gdir / "HEAD").read_text().strip()
    except OSError:
        return None, "HEAD is missing"
    if not VERSION.match(head):
        return None, f"HEAD holds {head[:40]!r}, not a version name like 'v000001'"
    if not (gdir / head).is_dir():
        return None, f"HEAD names {head}, which does not exist"
    return head, ""


def candidates(gdir: Path) -> tuple[list[str], list[str]]:
    """``(versions to try newest first, notes)``: HEAD's version then older ones; without a valid
    HEAD every version, newest first. Once any version has a manifest, versions without one are
    half-written and skipped."""
    versions = version_dirs(gdir)
    head, problem = read_head(gdir)
    notes = [problem] if problem else []
    order = [head] + [v for v in reversed(versions) if v < head] if head else list(reversed(versions))
    if any(has_manifest(gdir / v) for v in versions):
        skipped = [v for v in order if not has_manifest(gdir / v)]
        notes += [f"version {v} is incomplete (no manifest: a write was interrupted)" for v in skipped]
        order = [v for v in order if v not in skipped]
    return order, notes
