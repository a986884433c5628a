"""Atomic files and the artifact area of a run store.

Everything the store writes goes through the two primitives here: :func:`atomic_write_bytes`
(a file written beside its target and renamed over it) and :func:`write_zarr` (a Dataset written
to a zarr directory beside its target and swapped in). :class:`Artifacts` uses them for the
results that belong to no single run — toy-model grids, cached phase diagrams, sweep records::

    <root>/artifacts/<kind>/<name>.zarr    an xr.Dataset (zarr format 2)
    <root>/artifacts/<kind>/<name>.json    a JSON object

Kinds and names are validated, so nothing outside ``<root>/artifacts`` is written. Artifacts
written before this layout (``<root>/sweeps/<id>.json``, ``<root>/superposition/<name>.zarr``)
are still read, from :data:`LEGACY_DIRS`, until a save writes the new location.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import xarray as xr

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
AREA = "artifacts"
#: Where each kind was kept before the artifact area existed (read-only fallbacks).
LEGACY_DIRS: dict[str, str] = {"sweep": "sweeps", "phase_diagram": "superposition"}
READ_RETRIES = 5  # a reader that lands between the two renames of a zarr swap tries again


class ArtifactNotFoundError(KeyError):
    """No artifact of that kind and name; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def _tmp_name(path: Path, tag: str) -> Path:
    """A sibling of ``path`` unique to this process and thread."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{threading.get_ident()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    tmp = _tmp_name(path, "tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented, key-sorted JSON, written atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def write_zarr(path: Path, ds: xr.Dataset) -> Path:
    """Write ``ds`` to the zarr directory ``path`` (format 2: fixed-width strings read back as such).

    The Dataset is written to a temporary sibling, then swapped in with two renames, so readers
    never see a half-written directory; nothing is pickled.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds must be an xarray.Dataset, got {type(ds).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = _tmp_name(path, "tmp"), _tmp_name(path, "old")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.to_zarr(tmp, mode="w", consolidated=False, zarr_format=2)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def read_zarr(path: Path) -> xr.Dataset:
    """Read a Dataset written by :func:`write_zarr`, fully loaded into memory."""
    path = Path(path)
    for attempt in range(READ_RETRIES):
        try:
            with xr.open_zarr(path, consolidated=False) as ds:
                return ds.load()
        except (FileNotFoundError, KeyError):
            if attempt + 1 == READ_RETRIES:
                break
            time.sleep(0.05)  # a writer between its two renames
    raise FileNotFoundError(f"no dataset at {path}")


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it is a safe file stem: letters, digits, ``-``, ``_``, ``.``; no ``..``."""
    if not isinstance(name, str) or not NAME.match(name) or ".." in name:
        raise ValueError(f"invalid {what} {name!r}: expected letters, digits, '-', '_' or '.', "
                         "starting with a letter or digit, no path separators and no '..'")
    return name


class Artifacts:
    """The artifact area of a store root: ``save``, ``load``, ``names`` and ``delete`` by kind and name."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, kind: str) -> Path:
        if not isinstance(kind, str) or not KIND.match(kind):
            raise ValueError(f"invalid artifact kind {kind!r}: expected lower-case letters, digits and "
                             "'_', starting with a letter (e.g. 'phase_diagram', 'sweep', 'toy_grid')")
        return self.root / AREA / kind

    def _candidates(self, kind: str, name: str) -> list[Path]:
        """Where ``kind``/``name`` may be stored: the artifact area first, then its legacy place."""
        dirs = [self._dir(kind)] + ([self.root / LEGACY_DIRS[kind]] if kind in LEGACY_DIRS else [])
        check_name(name, f"{kind} name")
        paths = [d / f"{name}{ext}" for d in dirs for ext in (".zarr", ".json")]
        for p in paths:  # belt and braces: a validated name cannot leave its directory
            if p.resolve().parent != p.parent.resolve():
                raise ValueError(f"{kind} name {name!r} resolves outside {p.parent}")
        return paths

    def save(self, kind: str, name: str, value: xr.Dataset | dict) -> Path:
        """Store a Dataset (zarr) or a JSON object under ``kind``/``name``, atomically; returns the path."""
        self._candidates(kind, name)  # validates
        directory = self._dir(kind)
        directory.mkdir(parents=True, exist_ok=True)
        if isinstance(value, xr.Dataset):
            return write_zarr(directory / f"{name}.zarr", value)
        if isinstance(value, dict):
            path = directory / f"{name}.json"
            atomic_write_json(path, value)
            return path
        raise TypeError(f"an artifact is an xarray.Dataset or a JSON dict, got {type(value).__name__}")

    def find(self, kind: str, name: str) -> Path | None:
        """The stored path of ``kind``/``name`` (new location first), or None."""
        return next((p for p in self._candidates(kind, name) if p.exists()), None)

    def load(self, kind: str, name: str) -> xr.Dataset | dict:
        """The Dataset or dict stored as ``kind``/``name``; :class:`ArtifactNotFoundError` if none."""
        path = self.find(kind, name)
        if path is None:
            known = self.names(kind)
            raise ArtifactNotFoundError(f"no {kind} artifact {name!r} in {self.root}; known: {known}")
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return read_zarr(path)

    def names(self, kind: str) -> list[str]:
        """Sorted names stored under ``kind`` (both locations; hidden temporaries skipped)."""
        dirs = [self._dir(kind)] + ([self.root / LEGACY_DIRS[kind]] if kind in LEGACY_DIRS else [])
        found = {p.stem for d in dirs if d.is_dir() for p in d.iterdir()
                 if p.suffix in (".zarr", ".json") and NAME.match(p.stem)}
        return sorted(found)

    def delete(self, kind: str, name: str) -> None:
        """Remove ``kind``/``name`` from every location it is stored in."""
        for path in self._candidates(kind, name):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
