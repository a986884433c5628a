"""``analyze`` results as tables and files: the per-layer summary, the skipped report, .csv/.nc/.zarr.

The result Dataset holds two tables: the layers (dim ``layer``) and the tensors or layers not
analysed (dim ``skipped``: ``skip_reason``, ``skip_shape``, ``skip_dtype``). Files keep both:
``.nc`` (netCDF4 through h5netcdf) and ``.zarr`` hold the whole Dataset; ``.csv`` holds the
per-layer table, and the skipped report beside it as ``<name>.skipped.csv``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["SUMMARY_VARS", "format_table", "skipped_table", "summary_table", "write_result"]

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
    clean = ds.copy()
    for name, var in clean.variables.items():
        if var.dtype == object:  # variable-length strings: a fixed-width type both engines write
            clean[name] = var.astype(str) if var.size else var.astype("<U1")
    if path.suffix == ".nc":
        clean.to_netcdf(path, engine="h5netcdf")
    elif path.suffix == ".zarr":
        clean.to_zarr(path, mode="w", consolidated=False)
    else:
        raise ValueError(f"--out must end in .csv, .nc or .zarr, got {path.name!r}")
    return [path]


def format_table(df: pd.DataFrame) -> str:
    """Fixed-width text of a table (4 significant digits)."""
    if df.empty:
        return "(none)"
    return df.to_string(float_format=lambda v: f"{v:.4g}" if np.isfinite(v) else str(v))
