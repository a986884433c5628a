"""``workbench runs check``: verify every file of a run and say what to do about what is wrong.

:func:`check_run` reads without writing: ``config.json``/``state.json``, each metric group's
versions against their sha256 manifests (:mod:`workbench.integrity`), every checkpoint against its
manifest (:mod:`workbench.checkpoint_io`), the trajectory's committed rows, temporaries left by a
killed writer, and whether a run recorded as running still has a live writer (:attr:`Run.status`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import zarr

from workbench.checkpoint_io import CheckpointError, verified_dir
from workbench.integrity import candidates, has_manifest, manifest_problems, version_dirs
from workbench.store import Run, RunDamagedError

OK, WARNING, DAMAGED = "ok", "warning", "damaged"


@dataclass(frozen=True)
class Finding:
    """One line of a check: ``level`` (ok / warning / damaged), what was found, what to do."""

    level: str
    what: str
    advice: str = ""


def check_run(run: Run) -> list[Finding]:
    """Every finding about ``run``, worst parts first within each area; never writes."""
    findings = _check_json(run)
    if any(f.level == DAMAGED for f in findings):
        return findings
    findings += _check_metrics(run) + _check_checkpoints(run) + _check_trajectory(run)
    leftovers = [p.name for p in (run.path / "checkpoints").glob(".tmp-step-*")]
    if leftovers:
        findings.append(Finding(WARNING, f"temporary checkpoint directories left by a killed writer: {leftovers}",
                                "harmless; the next training of this run removes them"))
    info = run.status_info()
    if info["status"] == "stale":
        findings.append(Finding(WARNING, f"recorded as running but {info['reason']}", f"resume: {info['resume']}"))
    elif info["status"] in ("failed", "interrupted"):
        findings.append(Finding(WARNING, f"{info['status']}: {info['reason']}", f"resume: {info['resume']}"))
    return findings


def _check_json(run: Run) -> list[Finding]:
    out = []
    for name, prop in (("config.json", "config"), ("state.json", "state")):
        try:
            getattr(run, prop)
        except RunDamagedError as exc:
            out.append(Finding(DAMAGED, str(exc).split(". `")[0],
                               f"delete it (`workbench runs delete {run.id} --data {run.store.root}`) and train "
                               "the same config again (same config, same run id)"))
        else:
            out.append(Finding(OK, f"{name} reads"))
    return out


def _check_metrics(run: Run) -> list[Finding]:
    out = []
    for group in run.groups():
        gdir = run.path / "metrics.zarr" / group
        order, notes = candidates(gdir)
        good = None
        for version in order:
            problems = manifest_problems(gdir / version) if has_manifest(gdir / version) else []
            if problems:
                notes.append(f"version {version}: {'; '.join(problems)}")
            else:
                good = version
                break
        legacy = not any(has_manifest(gdir / v) for v in version_dirs(gdir))
        if good is None:
            out.append(Finding(DAMAGED, f"metrics group {group!r}: no intact version ({'; '.join(notes)})",
                               f"its steps are lost; retrain the run, or delete {gdir} to keep the other groups"))
        elif notes:
            out.append(Finding(WARNING, f"metrics group {group!r}: {'; '.join(notes)}; readers use the intact "
                                        f"version {good}",
                               f"steps written after {good} are lost; `workbench train resume {run.id}` "
                               "re-records them from the newest verified checkpoint"))
        else:
            out.append(Finding(OK, f"metrics group {group!r} ({good}{', written before checksums: unverified' if legacy else ''})"))
    return out


def _check_checkpoints(run: Run) -> list[Finding]:
    out, good = [], []
    for step in run.checkpoint_steps():
        try:
            verified_dir(run.path / "checkpoints", step, run.id)
        except CheckpointError as exc:
            out.append(Finding(WARNING, f"checkpoint at step {step} fails verification: {exc}",
                               "resume skips it and falls back to the newest checkpoint that verifies"))
        else:
            good.append(step)
    if out and not good:
        return [Finding(DAMAGED, f.what, "no checkpoint verifies: train the run again with --no-resume")
                for f in out]
    if good:
        out.append(Finding(OK, f"checkpoints verify at steps {good}"))
    return out


def _check_trajectory(run: Run) -> list[Finding]:
    tdir = run.path / "traj.zarr"
    if not tdir.exists():
        return []
    try:
        n = json.loads((tdir / "COMMITTED").read_text())
        g = zarr.open_group(tdir, mode="r")
        if g["values"].shape[0] < n or g["step"].shape[0] < n:
            raise ValueError(f"COMMITTED says {n} rows but the arrays hold fewer")
        run.trajectory().data.sum().compute()  # every block read and checked against its CRC
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        return [Finding(DAMAGED, f"trajectory unreadable ({exc.__class__.__name__}: {exc})",
                        f"delete {tdir} (the metrics and checkpoints stay usable) or retrain the run")]
    checked = "CRC-checked" if "crc" in g else "recorded before checksums: unverified"
    return [Finding(OK, f"trajectory: {n} rows, steps increasing, {checked}")]
