"""The stored parameter trajectory of a run: ``<run>/traj.zarr``, one row per recorded step.

``values`` (step, param) float32 in row chunks of :data:`TRAJ_CHUNK_PARAMS` columns (parameter
slices read without whole rows), ``step`` (int64), ``crc`` (the CRC-32 of each row's column chunks,
:mod:`workbench.integrity`) and ``COMMITTED``, the number of rows that exist: a row counts only once
that file lands, so a process killed mid-append leaves the previous rows intact. Read lazily (dask).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import zarr

from workbench.artifacts import atomic_write_json
from workbench.integrity import RunDamagedError, row_crcs, verified_rows

TRAJ_CHUNK_PARAMS = 2**20  # columns per stored trajectory chunk (4 MiB of float32)
TRAJ_READ_BYTES = 2**27  # target size of one lazily read block of the trajectory


class TrajectoryFile:
    """``traj.zarr`` of run ``run_id`` at ``path``: append rows, read them lazily, truncate on resume."""

    def __init__(self, path: Path, run_id: str):
        self.path, self.run_id = Path(path), run_id

    def exists(self) -> bool:
        """True once a row has been started (``COMMITTED`` written)."""
        return (self.path / "COMMITTED").exists()

    def committed(self) -> int:
        """Rows that exist: rows past this count may be half-written (a resized array's fill value
        0, or a stale step from before a truncation)."""
        return json.loads((self.path / "COMMITTED").read_text())

    def steps(self) -> np.ndarray:
        """Steps of the committed rows only."""
        return zarr.open_group(self.path, mode="r")["step"][: self.committed()]

    def append(self, step: int, vector: torch.Tensor | np.ndarray, attrs: dict | None = None) -> None:
        """Append one row ``vector`` (n_param,) at ``step`` to ``traj.zarr``; each row is stored in
        chunks of ``TRAJ_CHUNK_PARAMS`` columns, so parameter slices can be read without whole rows,
        with the CRC-32 of each chunk in ``crc`` (checked by :meth:`read`)."""
        vec = np.asarray(vector.detach().cpu() if isinstance(vector, torch.Tensor) else vector, dtype=np.float32)
        tdir = self.path
        if not tdir.exists():
            g = zarr.open_group(tdir, mode="w", attributes=attrs or {})
            g.create_array("values", shape=(0, vec.size), chunks=(1, min(vec.size, TRAJ_CHUNK_PARAMS)),
                           dtype="float32")
            g.create_array("step", shape=(0,), chunks=(4096,), dtype="int64")
            n_chunks = -(-vec.size // min(vec.size, TRAJ_CHUNK_PARAMS))
            g.create_array("crc", shape=(0, n_chunks), chunks=(4096, n_chunks), dtype="uint32")
            atomic_write_json(tdir / "COMMITTED", 0)
        g = zarr.open_group(tdir, mode="r+")
        n = self.committed()
        values, steps = g["values"], g["step"]
        if values.shape[1] != vec.size:
            raise ValueError(f"trajectory rows have {values.shape[1]} params, got a vector of {vec.size}")
        # each array on its own: a process killed between the two resizes leaves them unequal
        if values.shape[0] < n + 1:
            values.resize((n + 1, vec.size))
        if steps.shape[0] < n + 1:
            steps.resize((n + 1,))
        values[n] = vec
        steps[n] = step
        if "crc" in g:  # (trajectories recorded before checksums have none)
            crc = g["crc"]
            if crc.shape[0] < n + 1:
                crc.resize((n + 1, crc.shape[1]))
            crc[n] = row_crcs(vec, values.chunks[1])
        atomic_write_json(tdir / "COMMITTED", n + 1)  # the row exists only once this lands

    def read(self) -> xr.DataArray:
        """The rows as a lazy (dask) DataArray (``step``, ``param``), each block checked against
        its CRC-32 as it is read; steps out of order (a lost chunk) raise :class:`RunDamagedError`."""
        import dask.array as da

        tdir = self.path
        if not tdir.exists():
            raise FileNotFoundError(f"run {self.run_id} has no parameter trajectory (train with trajectory_every > 0)")
        g = zarr.open_group(tdir, mode="r")
        n = self.committed()
        values = g["values"]
        width = values.chunks[1]
        rows = max(1, min(n, TRAJ_READ_BYTES // (4 * width)))
        lazy = da.from_zarr(values, chunks=(rows, width))[:n]
        steps = g["step"][:n]
        if n > 1 and not (np.diff(steps) > 0).all():
            raise RunDamagedError(f"run {self.run_id}: trajectory steps are out of order or lost (a missing chunk reads "
                                  f"as step 0); `workbench runs check {self.run_id}` says what to do")
        if "crc" in g:
            lazy = verified_rows(lazy, g["crc"][:n], steps, width, self.run_id)
        return xr.DataArray(lazy, dims=("step", "param"),
                            coords={"step": steps, "param": np.arange(values.shape[1])},
                            name="trajectory", attrs=dict(g.attrs))

    def truncate(self, max_step: int) -> None:
        """Keep only the rows at or before ``max_step`` (resume from a checkpoint at that step)."""
        if self.exists():
            atomic_write_json(self.path / "COMMITTED", int((self.steps() <= max_step).sum()))
