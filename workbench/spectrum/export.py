"""``analyze`` results as tables and files: the per-layer summary, the skipped report, .csv/.nc/.zarr.

The result Dataset holds two tables: the layers (dim ``layer``) and the tensors or layers not
analysed (dim ``skipped``: ``skip_reason``, ``skip_shape``, ``skip_dtype``). Files keep both:
``.nc`` (netCDF3 through SciPy) and ``.zarr`` hold the whole Dataset; ``.csv`` holds the
per-layer table, and the skipped report beside it as ``<name>.skipped.csv``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["SUMMARY_VARS", "format_table", "skipped_summary", "skipped_table", "summary_table", "write_result"]

SUMMARY_VARS = ("alpha", "alpha_lo", "alpha_hi", "alpha_weighted", "stable_rank", "effective_rank",
                "condition_number", "num_spikes")


def skipped_table(ds: xr.Dataset) -> pd.DataFrame:
    """Every tensor or layer not analysed, with its reason: columns ``reason``, ``shape``,
    ``dtype``, index ``skipped`` (tensor key, or layer name for layers left out whole)."""
    if "skip_reason" not in ds:
        return pd.DataFrame(columns=["reason", "shape", "dtype"], index=pd.Index([], name="skipped"))
    df = ds[["skip_reason", "skip_shape", "skip_dtype"]].to_dataframe()
    return df.rename(columns={"skip_reason": "reason", "skip_shape": "shape", "skip_dtype": "dtype"})


def summary_table(ds: xr.Dataset, variables: tuple[str, ...] = SUMMARY_VARS) -> pd.DataFrame:
    """The per-layer metrics the CLI prints (those of ``variables`` present), index ``layer``."""
    return ds[[v for v in variables if v in ds and ds[v].dims == ("layer",)]].to_dataframe()


def _layer_table(ds: xr.Dataset) -> pd.DataFrame:
    names = [v for v in ds.data_vars if ds[v].dims == ("layer",)]
    return ds[names].reset_coords().to_dataframe()


def write_result(ds: xr.Dataset, path: str | os.PathLike) -> list[Path]:
    """Write an ``analyze`` result to ``.csv``, ``.nc`` or ``.zarr`` (see the module docstring);
    returns the files written."""
    path = Path(path)
    if path.suffix == ".csv":
        _layer_table(ds).to_csv(path)
        side = path.with_suffix(".skipped.csv")
        skipped_table(ds).to_csv(side)
        return [path, side]
    if path.suffix == ".nc":  # netCDF3 (SciPy, no HDF5 needed): strings as fixed-width chars
        ds.assign({k: v.astype(str) for k, v in ds.data_vars.items() if v.dtype == object}).assign_coords(
            {k: v.astype(str) for k, v in ds.coords.items() if v.dtype == object}).to_netcdf(path, engine="scipy")
    elif path.suffix == ".zarr":  # variable-length UTF-8 strings, as the run store writes them
        ds.assign_coords({k: v.astype(object) for k, v in ds.coords.items() if v.dtype.kind == "U"}).to_zarr(
            path, mode="w")
    else:
        raise ValueError(f"--out must end in .csv, .nc or .zarr, got {path.name!r}")
    return [path]


def format_table(df: pd.DataFrame) -> str:
    """Fixed-width text of a table (4 significant digits)."""
    if df.empty:
        return "(none)"
    return df.to_string(float_format=lambda v: f"{v:.4g}" if np.isfinite(v) else str(v))


def skipped_summary(ds: xr.Dataset) -> str:
    """The skipped report as text: each skipped weight matrix with its reason; 1-D tensors
    (biases, norm scales) and layers not selected by a filter counted on one line each."""
    table = skipped_table(ds)
    routine = table.reason.str.startswith("1-D") | table.reason.str.startswith("not selected")
    lines = [f"skipped: {len(table)} tensors or layers"]
    for prefix, label in (("1-D", "1-D tensors (biases, norm scales, buffers)"), ("not selected", "layers not selected")):
        count = int(table.reason.str.startswith(prefix).sum())
        if count:
            lines.append(f"  {count} {label}")
    if (~routine).any():
        lines.append(format_table(table[~routine]))
    return "\n".join(lines)
