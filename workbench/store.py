"""RunStore: one directory per training run, accumulating labelled datasets along ``step``.

Layout of ``<root>/<run_id>/``::

    config.json          hyperparameters (immutable; the run id is a hash of it)
    state.json           status, last step, summary, attrs (key_freqs, phases, ...), versions
    metrics.zarr/<group>/HEAD, v000001/ ...   one zarr store per probe group, copy-on-write
    traj.zarr/           parameter trajectory (step, param), row-chunked, with a COMMITTED count
    checkpoints/step-000001000/{model,optimizer}.safetensors, state.json, manifest.json
    .lock                the writer lock: owner pid/host, mtime = heartbeat (:mod:`workbench.runlock`)

and ``<root>/artifacts/<kind>/<name>.{zarr,json}`` for results that belong to no single run (toy
grids, phase diagrams, sweep records: :meth:`RunStore.save_artifact`, :mod:`workbench.artifacts`).

Every write is atomic: files are written to a temporary name and renamed; a metrics append writes a
new version of its group with a sha256 manifest and then swaps the ``HEAD`` pointer, so a crash
mid-append leaves the previous version readable; readers verify the manifest and fall back to the
newest intact version (:mod:`workbench.integrity`). Checkpoints carry a sha256 manifest and are
verified on load (:mod:`workbench.checkpoint_io`); nothing is ever unpickled. Run ids, artifact
kinds and names are validated so nothing outside ``root`` is read or written.

One process trains a run at a time (:meth:`RunStore.lock`); :attr:`Run.status` tells a live run
from one whose writer is gone.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from workbench.artifacts import Artifacts, atomic_write_bytes, atomic_write_json
from workbench.checkpoint_io import (
    CheckpointError,
    checkpoint_steps,
    read_checkpoint,
    step_dir,
    verified_dir,
    write_checkpoint,
)
from workbench.integrity import (
    MANIFEST,
    RunDamagedError,
    candidates,
    has_manifest,
    manifest_path,
    manifest_problems,
    version_dirs,
    write_manifest,
)
from workbench.runlock import RunLockedError, owner_of, run_lock, writer_alive
from workbench.traj_file import TrajectoryFile

__all__ = ["CheckpointError", "Run", "RunDamagedError", "RunLockedError", "RunNotFoundError", "RunStore",
           "atomic_write_json", "default_root", "run_id_for"]

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
GROUP = re.compile(r"^[A-Za-z0-9_]{1,64}$")
DEFAULT_ROOT = Path("data/runs")


class RunNotFoundError(KeyError):
    """Unknown run id; the message says how to list runs."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


#: Recorded statuses that end a run (nothing writes to it any more).
FINAL_STATUSES = frozenset({"done", "diverged", "failed", "interrupted"})


def default_root() -> Path:
    """``$WORKBENCH_DATA`` if set, else ``data/runs`` relative to the current directory."""
    return Path(os.environ.get("WORKBENCH_DATA", DEFAULT_ROOT))


def config_hash(config: dict) -> str:
    """Content hash of a config: sha256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def run_id_for(config: dict) -> str:
    """``<kind>-<12 hex>``: readable prefix from ``config["kind"]``, content-derived suffix."""
    kind = re.sub(r"[^A-Za-z0-9_]", "_", str(config.get("kind", "run")))[:32] or "run"
    return f"{kind}-{config_hash(config)[:12]}"


def _versions() -> dict[str, str]:
    import platform

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "xarray": xr.__version__}


class RunStore:
    """A directory of runs. ``RunStore(root)``; ``create``, ``open``, ``list``, ``delete``."""

    def __init__(self, root: str | os.PathLike | None = None, *, create: bool = True):
        self.root = Path(root) if root is not None else default_root()
        if not create and not self.root.is_dir():
            raise FileNotFoundError(
                f"the data root {self.root} does not exist; pass the directory your runs are in with "
                "--data (or $WORKBENCH_DATA), or train a run first (`workbench demo`)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self._artifacts = Artifacts(self.root)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def _path(self, run_id: str) -> Path:
        if not isinstance(run_id, str) or not RUN_ID.match(run_id) or ".." in run_id:
            raise ValueError(
                f"invalid run id {run_id!r}: expected letters, digits, '-', '_' or '.', "
                "no path separators (ids look like 'grokking-1a2b3c4d5e6f')")
        path = (self.root / run_id).resolve()
        if path.parent != self.root:
            raise ValueError(f"run id {run_id!r} resolves outside the data root {self.root}")
        return path

    def create(self, config: dict, *, device: str = "cpu") -> Run:
        """Create (or return the existing) run for ``config``; the id is content-derived."""
        if not isinstance(config, dict) or not config:
            raise TypeError("config must be a non-empty dict of hyperparameters")
        json.dumps(config)  # must be JSON-serialisable: fail here, not half-way through a run
        run_id = run_id_for(config)
        path = self._path(run_id)
        if (path / "config.json").exists():
            return Run(self, run_id)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path / "state.json", {
            "status": "created", "step": 0, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "versions": _versions(), "device": device, "attrs": {}, "summary": {}})
        atomic_write_json(path / "config.json", config)  # written last: marks the run complete
        return Run(self, run_id)

    def open(self, run_id: str) -> Run:
        """Open an existing run; unknown ids raise :class:`RunNotFoundError`."""
        path = self._path(run_id)
        if not (path / "config.json").exists():
            known = self.ids()
            hint = f" Known runs: {', '.join(known[:10])}{' ...' if len(known) > 10 else ''}." if known else ""
            raise RunNotFoundError(
                f"no run {run_id!r} in {self.root}.{hint} See them with `workbench runs list --data {self.root}`.")
        return Run(self, run_id)

    def ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "config.json").exists())

    def __iter__(self) -> Iterator[Run]:
        return (Run(self, i) for i in self.ids())

    def list(self) -> pd.DataFrame:
        """One row per run: id, kind, status (:attr:`Run.status`), step, created and the latest summary.

        A run whose ``config.json``/``state.json`` is unreadable is left out and named, with the
        reason, in ``df.attrs["damaged"]`` (``{run_id: message}``); one damaged run never hides the others.
        """
        rows, damaged = [], {}
        for run in self:
            try:
                state, config = run.state, run.config
                rows.append({"run_id": run.id, "kind": config.get("kind", ""), "status": run.status,
                             "step": state.get("step", 0), "created": state.get("created"),
                             **state.get("summary", {})})
            except RunDamagedError as exc:
                damaged[run.id] = str(exc)
        columns = ["run_id", "kind", "status", "step", "created"]
        df = pd.DataFrame(rows, columns=None if rows else columns)
        df.attrs["damaged"] = damaged
        return df

    def delete(self, run_id: str) -> None:
        """Remove a run directory (validated to lie inside the root); a run that another process
        trains is refused with :class:`RunLockedError`."""
        path = self.open(run_id).path
        with self.lock(run_id, wait=False):
            shutil.rmtree(path)

    def exists(self, run_id: str) -> bool:
        """True when ``run_id`` (validated) is a complete run of this store."""
        return (self._path(run_id) / "config.json").exists()

    @contextlib.contextmanager
    def lock(self, run_id: str, *, wait: bool = True) -> Iterator[None]:
        """The run's writer lock (also for a run not created yet) while a process trains it.

        A ``flock`` on ``<run>/.lock`` naming its owner, with a heartbeat (:mod:`workbench.runlock`):
        the OS drops it if the process dies, so a killed trainer never leaves the run locked.
        ``wait=False`` raises :class:`RunLockedError` naming the owner instead of blocking. Nested
        use in the holding thread is free. On taking it, temporaries left by a killed writer
        (:meth:`Run.clean_temporaries`) are removed.
        """
        path = self._path(run_id)
        with run_lock(path, run_id, wait=wait):
            Run(self, run_id).clean_temporaries()
            yield

    # -- artifacts: results that belong to no single run (workbench.artifacts) -----------------
    def save_artifact(self, kind: str, name: str, value: xr.Dataset | dict) -> Path:
        """Store a Dataset (zarr) or JSON dict as ``<root>/artifacts/<kind>/<name>``, atomically.

        Kinds in use: ``toy_grid``, ``phase_diagram``, ``sweep``. Kind and name are validated
        like run ids, so nothing outside the root is written.
        """
        return self._artifacts.save(kind, name, value)

    def load_artifact(self, kind: str, name: str) -> xr.Dataset | dict:
        """The stored artifact (also from its pre-artifact-area location); KeyError if unknown."""
        return self._artifacts.load(kind, name)

    def artifacts(self, kind: str) -> list[str]:
        """Names of the artifacts of ``kind``, sorted."""
        return self._artifacts.names(kind)

    def delete_artifact(self, kind: str, name: str) -> None:
        """Remove an artifact (from every location it is stored in)."""
        self._artifacts.delete(kind, name)


class Run:
    """One run directory. Create through :meth:`RunStore.create` / :meth:`RunStore.open`."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.id = store, run_id
        self.path = store._path(run_id)
        self._trajectory = TrajectoryFile(self.path / "traj.zarr", run_id)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.state.get('status')!r}, step={self.state.get('step')})"

    # -- config and mutable state -------------------------------------------------------------
    def _json(self, name: str) -> dict:
        try:
            value = json.loads((self.path / name).read_text())
        except (OSError, ValueError) as exc:
            raise RunDamagedError(
                f"run {self.id}: {name} is missing or unreadable ({exc.__class__.__name__}: {exc}). "
                f"`workbench runs check {self.id}` says what survives; delete the run with "
                f"`workbench runs delete {self.id}` if nothing does.") from None
        if not isinstance(value, dict):
            raise RunDamagedError(f"run {self.id}: {name} holds {type(value).__name__}, not a JSON object")
        return value

    @property
    def config(self) -> dict:
        return self._json("config.json")

    @property
    def state(self) -> dict:
        return self._json("state.json")

    @property
    def status(self) -> str:
        """The run's status as it really is (what the dashboard and ``runs list`` show).

        ``created``, ``done``, ``diverged``, ``failed``, ``interrupted`` as recorded; ``running``
        only while a live process holds the run's writer lock (pid alive and heartbeat fresh);
        ``stale`` when the run was left ``running`` by a process that is gone (killed, OOM, power
        loss) — resume it with ``workbench train resume ID``. See :meth:`status_info` for the reason.
        """
        return self.status_info()["status"]

    def status_info(self) -> dict:
        """``{status, recorded, step, reason, resume, owner}``: :attr:`status` with its explanation.

        ``reason`` is the recorded failure/interruption cause (or why a run is stale), ``resume``
        the command that continues the run (empty when done), ``owner`` the last writer
        ``{pid, host, started, heartbeat_age}``.
        """
        state = self.state
        recorded = state.get("status", "created")
        owner = owner_of(self.path)
        status, reason = recorded, state.get("reason", "")
        if recorded == "running" and not writer_alive(self.path):
            status = "stale"
            reason = (f"left running by pid {owner.get('pid', '?')} on {owner.get('host', '?')}, which no longer "
                      f"holds the run (killed or crashed; last heartbeat {owner.get('heartbeat_age', 0):.0f} s ago)"
                      if owner else "left running by a process that is gone")
        resume = "" if status in ("done", "running") else state.get("resume") or self.resume_command()
        return {"status": status, "recorded": recorded, "step": state.get("step", 0), "reason": reason,
                "resume": resume, "owner": owner}

    def resume_command(self) -> str:
        """The shell command that continues this run from its newest verified checkpoint."""
        return f"workbench train resume {self.id} --data {self.store.root}"

    def update_state(self, **changes: Any) -> None:
        state = self.state
        state.update(changes)
        atomic_write_json(self.path / "state.json", state)

    @property
    def attrs(self) -> dict:
        """JSON attrs attached to the run (e.g. ``key_freqs``, ``phases``); merged into metrics()."""
        return self.state.get("attrs", {})

    def set_attrs(self, attrs: dict) -> None:
        json.dumps(attrs)
        self.update_state(attrs={**self.attrs, **attrs})

    # -- metrics -------------------------------------------------------------------------------
    def _group_dir(self, group: str) -> Path:
        if not GROUP.match(group):
            raise ValueError(f"metric group must match {GROUP.pattern}, got {group!r}")
        return self.path / "metrics.zarr" / group

    def groups(self) -> list[str]:
        """Metric groups with at least one stored version (also one whose ``HEAD`` was lost)."""
        root = self.path / "metrics.zarr"
        return sorted(p.name for p in root.iterdir()
                      if GROUP.match(p.name) and version_dirs(p)) if root.exists() else []

    def _read_group(self, group: str) -> xr.Dataset | None:
        """The newest intact version of ``group`` (None if it has none): HEAD's if its manifest
        verifies, else the newest older one that does, with a warning naming what was skipped."""
        gdir = self._group_dir(group)
        if not version_dirs(gdir):
            return None
        order, notes = candidates(gdir)
        for version in order:
            problems = manifest_problems(gdir / version) if has_manifest(gdir / version) else []
            if not problems:
                try:
                    with xr.open_zarr(gdir / version, consolidated=False) as ds:
                        ds = ds.load()
                except Exception as exc:  # noqa: BLE001 - an unreadable version: fall back, loudly
                    problems = [f"{exc.__class__.__name__}: {exc}"]
                else:
                    if notes:
                        warnings.warn(f"metrics group {group!r} of run {self.id}: newer data is unreadable "
                                      f"({'; '.join(notes)}); reading the intact version {version}. "
                                      f"`workbench runs check {self.id}` lists what was lost.", stacklevel=3)
                    return ds
            notes.append(f"version {version}: {'; '.join(problems)}")
        raise RunDamagedError(f"run {self.id}: no intact version of metrics group {group!r} "
                              f"({'; '.join(notes)}). Its steps cannot be read; retrain the run or delete "
                              f"the group directory {gdir} to keep the other groups.")

    def append(self, ds: xr.Dataset, group: str = "train") -> None:
        """Append ``ds`` (with a ``step`` dim) to ``group``; steps already stored are replaced."""
        if not isinstance(ds, xr.Dataset) or "step" not in ds.dims:
            raise ValueError("append expects an xr.Dataset with a 'step' dimension")
        gdir = self._group_dir(group)
        gdir.mkdir(parents=True, exist_ok=True)
        old = self._read_group(group)
        if old is not None:
            old = old.sel(step=~old.step.isin(ds.step.values))
            ds = xr.concat([old, ds], dim="step", join="outer", data_vars="all", coords="different",
                           compat="equals", combine_attrs="override").sortby("step")
        self._write_group(gdir, ds)

    def truncate(self, max_step: int) -> None:
        """Drop every metric and trajectory row after ``max_step`` (used when resuming)."""
        for group in self.groups():
            ds = self._read_group(group)
            if ds is not None and int(ds.step.max()) > max_step:
                self._write_group(self._group_dir(group), ds.sel(step=ds.step <= max_step))
        self._trajectory.truncate(max_step)

    @staticmethod
    def _write_group(gdir: Path, ds: xr.Dataset) -> None:
        versions = version_dirs(gdir)
        version = f"v{int(versions[-1][1:]) + 1 if versions else 1:06d}"
        # fixed-width numpy strings ("<U7") have no Zarr v3 spec; object strings are written as the
        # specified variable-length UTF-8 type, readable by other Zarr libraries
        ds = ds.copy().assign_coords({k: v.astype(object) for k, v in ds.coords.items() if v.dtype.kind == "U"})
        ds = ds.assign({k: v.astype(object) for k, v in ds.data_vars.items() if v.dtype.kind == "U"})
        for name in ds.variables:
            ds[name].encoding = {}
        ds.to_zarr(gdir / version, mode="w", consolidated=False)
        write_manifest(gdir / version)  # the version is complete only now
        atomic_write_bytes(gdir / "HEAD", version.encode())
        for stale in versions[:-1]:  # keep the previous version as a fallback for readers
            shutil.rmtree(gdir / stale, ignore_errors=True)
            manifest_path(gdir / stale).unlink(missing_ok=True)

    def metrics(self, group: str | None = None) -> xr.Dataset:
        """All metric groups merged on ``step`` (or one group), with the run's attrs attached."""
        groups = [group] if group is not None else self.groups()
        parts = [d for d in (self._read_group(g) for g in groups) if d is not None]
        ds = xr.merge(parts, join="outer", compat="override", combine_attrs="drop") if parts else xr.Dataset(
            coords={"step": np.zeros(0, dtype=np.int64)})
        ds.attrs.update({k: v if isinstance(v, (int, float, str)) else json.dumps(v) for k, v in self.attrs.items()})
        ds.attrs["run_id"] = self.id
        return ds

    def clean_temporaries(self) -> list[Path]:
        """Remove what a killed writer left half-done: ``checkpoints/.tmp-step-*`` dirs, metric
        versions without a manifest in groups that have manifests, and ``.*.tmp-*`` files of
        atomic writes. Called under the writer lock (:meth:`RunStore.lock`); returns what went."""
        cdir, gone = self.path / "checkpoints", []
        leftovers = [*cdir.glob(".tmp-step-*"), *self.path.glob(".*.tmp-*"), *cdir.glob("*/.*.tmp-*"),
                     *(self.path / "traj.zarr").glob(".*.tmp-*")]
        for gdir in (self.path / "metrics.zarr").glob("*"):
            versions = version_dirs(gdir)
            if any(has_manifest(gdir / v) for v in versions):
                leftovers += [gdir / v for v in versions if not has_manifest(gdir / v)]
            leftovers += [*gdir.glob(".*.tmp-*"), *(m for m in gdir.glob(f"v*{MANIFEST}")
                                                    if not m.with_name(m.name[:-len(MANIFEST)]).is_dir())]
        for path in leftovers:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            gone.append(path)
        return gone

    # -- parameter trajectory (storage: workbench.traj_file) ------------------------------------
    def append_trajectory(self, step: int, vector: torch.Tensor | np.ndarray, attrs: dict | None = None) -> None:
        """Append one row ``vector`` (n_param,) at ``step`` (:meth:`TrajectoryFile.append`)."""
        self._trajectory.append(step, vector, attrs)

    def has_trajectory(self) -> bool:
        """True when the run recorded a parameter trajectory."""
        return self._trajectory.exists()

    def trajectory(self) -> xr.DataArray:
        """Recorded parameters as a lazy (dask) DataArray with dims (``step``, ``param``).

        Nothing is read until ``.values``/``.load()``/a computation asks for it, so a trajectory
        larger than memory can be reduced block by block (e.g. ``trajectory_spectrum``). Each block
        is checked against the rows' CRC-32 as it is read, and the steps must increase: a lost or
        damaged chunk raises :class:`RunDamagedError` instead of reading as zeros.
        """
        return self._trajectory.read()

    # -- checkpoints (files and verification: workbench.checkpoint_io) ------------------------
    def checkpoint_steps(self) -> list[int]:
        return checkpoint_steps(self.path / "checkpoints")

    def save_checkpoint(self, step: int, model: torch.nn.Module, optimizer: Any = None,
                        extra: dict | None = None, *, keep: int = 3) -> Path:
        """Write model/optimizer tensors (safetensors) + JSON state + sha256 manifest atomically."""
        return write_checkpoint(self.path / "checkpoints", step, model, optimizer, extra, keep=keep)

    def load_checkpoint(self, step: int | None = None, device: str | torch.device = "cpu") -> dict:
        """Verify and load a checkpoint (latest by default) → ``{step, model, optimizer, extra}``."""
        return read_checkpoint(verified_dir(self.path / "checkpoints", step, self.id), device)

    def newest_verified_checkpoint(self, at_most: int | None = None) -> int | None:
        """Step of the newest checkpoint (at or before ``at_most``) whose files verify, or None.

        Each newer checkpoint that fails verification is skipped with a warning naming why.
        """
        for step in reversed(self.checkpoint_steps()):
            if at_most is not None and step > at_most:
                continue
            try:
                verified_dir(self.path / "checkpoints", step, self.id)
            except CheckpointError as exc:
                warnings.warn(f"skipping the checkpoint at step {step} of run {self.id}: {exc}", stacklevel=2)
                continue
            return step
        return None

    def drop_checkpoints_after(self, step: int) -> None:
        """Delete the checkpoints after ``step`` (a resume from ``step`` supersedes them)."""
        for later in self.checkpoint_steps():
            if later > step:
                shutil.rmtree(step_dir(self.path / "checkpoints", later), ignore_errors=True)

    def load_model(self, step: int | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
        """Rebuild the model from ``config["model"]`` and load a verified checkpoint's weights."""
        from workbench.registry import build_model

        if "model" not in self.config:
            raise ValueError(f"run {self.id} has no 'model' entry in its config; it holds no torch model")
        model = build_model(self.config["model"])
        model.load_state_dict(self.load_checkpoint(step, device)["model"])
        return model.to(device).eval()
