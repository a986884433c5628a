"""Sweep planning: validate a grid against a task's config and list its points with their run ids.

Everything here runs in the client before anything is submitted, so a bad axis, value or
combination fails at once, naming what was wrong.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.store import run_id_for
from workbench.sweep.tasks import SweepTask, get_task


def _check_value(axis: str, value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"grid[{axis!r}] values must be int, float or str, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"grid[{axis!r}] values must be finite, got {value!r}")
    return value


def validate_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """``{axis: values}`` with non-empty, duplicate-free lists of JSON scalars (order kept)."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must be a non-empty mapping {parameter: [values, ...]}")
    axes: dict[str, list[Any]] = {}
    for axis, values in grid.items():
        if not isinstance(axis, str) or not axis.isidentifier():
            raise ValueError(f"grid axis names must be identifiers (config fields), got {axis!r}")
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise TypeError(f"grid[{axis!r}] must be a list of values, got {values!r}")
        vals = [_check_value(axis, v) for v in values]
        if not vals:
            raise ValueError(f"grid[{axis!r}] is empty")
        if len(set(vals)) != len(vals):
            raise ValueError(f"grid[{axis!r}] has duplicate values: {vals}")
        axes[axis] = vals
    return axes


def _parse_scalar(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """Parse CLI grid specs ``["wd=0.1,1.0", "frac=0.3,0.5"]`` → ``{"wd": [0.1, 1.0], "frac": [0.3, 0.5]}``."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise ValueError(f"grid spec must look like 'name=v1,v2,...', got {spec!r}")
        if name.strip() in grid:
            raise ValueError(f"grid axis {name.strip()!r} given twice")
        grid[name.strip()] = [_parse_scalar(v.strip()) for v in values.split(",") if v.strip()]
    return validate_grid(grid)


def parse_overrides(specs: Sequence[str]) -> dict[str, Any]:
    """Parse ``["p=23", "op=sub"]`` → ``{"p": 23, "op": "sub"}`` (fixed config values of a sweep)."""
    out: dict[str, Any] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"override must look like 'name=value', got {spec!r}")
        out[name.strip()] = _parse_scalar(value.strip())
    return out


@dataclass(frozen=True)
class GridPoint:
    """One cell of a sweep: its index along each axis, its parameters and its run id."""

    index: tuple[int, ...]
    params: dict[str, Any]
    run_id: str


def plan(task: str | SweepTask, grid: Mapping[str, Sequence[Any]], base: Mapping[str, Any] | None = None
         ) -> tuple[dict[str, list[Any]], list[GridPoint]]:
    """Validate ``grid`` and ``base`` against the task's config and list the grid points with run ids.

    Every config is built (and so validated) here, in the client, before anything is submitted.
    """
    spec = get_task(task)
    axes = validate_grid(grid)
    base = dict(base or {})
    config_cls, _ = spec.resolve()
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted((set(axes) | set(base)) - fields)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} parameter(s) {unknown}; sweepable: {sorted(fields)}")
    both = sorted(set(axes) & set(base))
    if both:
        raise ValueError(f"parameter(s) {both} are both grid axes and fixed in base; give each once")
    points, seen = [], {}
    for index in itertools.product(*(range(len(v)) for v in axes.values())):
        params = {**base, **{a: axes[a][i] for a, i in zip(axes, index)}}
        try:
            config = config_cls(**params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"grid point {params} is not a valid {config_cls.__name__}: {exc}") from exc
        run_id = run_id_for(config.to_run_config())
        if run_id in seen:
            raise ValueError(f"grid points {seen[run_id]} and {params} give the same run {run_id}")
        seen[run_id] = params
        points.append(GridPoint(tuple(index), params, run_id))
    return axes, points


def sweep_id_for(task_name: str, axes: Mapping[str, list[Any]], base: Mapping[str, Any]) -> str:
    """``<task>-sweep-<12 hex>``: content hash of the task name, axes (in order) and base config."""
    text = json.dumps({"task": task_name, "axes": list(axes.items()), "base": dict(base)}, sort_keys=True)
    return f"{task_name}-sweep-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
