"""A series of checkpoints on disk → a run: parameter trajectory and weight spectra over steps.

``workbench import checkpoints DIR`` (and :func:`import_checkpoints`) reads a training run saved
by someone else's loop and stores it as a run, so the dashboard's run browser, the Koopman page
and the notebooks work on it as on the workbench's own runs. Layouts recognised in ``DIR``:

- the store's own: ``step-000000100/model.safetensors`` (a run's ``checkpoints/`` folder, or the
  run directory holding it);
- the Hugging Face ``Trainer``'s: ``checkpoint-100/`` (``model.safetensors``, sharded, or
  ``pytorch_model.bin``);
- files: ``step-100.safetensors`` (any name with the step as its last number; ``.pt``/``.bin``).

Per step the run gets the :func:`workbench.spectrum.analyze` metrics (group ``spectrum``, dims
``step``, ``layer``) and one row of the parameter trajectory: the sparse Johnson–Lindenstrauss
sketch of every floating-point tensor (:class:`workbench.trajectory.ParameterRecorder`, Kane &
Nelson 2014), the input of the Koopman lens. Every checkpoint is read, checked (same tensors and
shapes throughout) and analysed before the run is created: on any failure nothing is written.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from workbench.spectrum import analyze, as_probe_dataset, open_weights
from workbench.spectrum.weights import TORCH_SUFFIXES, TensorReader
from workbench.store import Run, RunStore
from workbench.trajectory import ParameterRecorder

__all__ = ["CheckpointSeries", "find_checkpoints", "import_checkpoints"]

STEP = re.compile(r"(\d+)(?!.*\d)")  # the last number in a name


@dataclass(frozen=True)
class CheckpointSeries:
    """Checkpoints of one run: ``paths[k]`` holds the weights at ``steps[k]`` (ascending)."""

    source: Path
    layout: str  # store | hf-trainer | files
    steps: list[int]
    paths: list[Path]


def _numbered(entries: list[Path]) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for p in entries:
        m = STEP.search(p.stem if p.is_file() else p.name)
        if m:
            found[int(m.group(1))] = p
    return found


def find_checkpoints(directory: str | os.PathLike) -> CheckpointSeries:
    """The checkpoint series in ``directory`` (see the module docstring for the layouts)."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory of checkpoints")
    if (root / "checkpoints").is_dir():
        root = root / "checkpoints"
    store = [p for p in root.glob("step-*") if (p / "model.safetensors").is_file()]
    trainer = [p for p in root.glob("checkpoint-*") if p.is_dir()]
    files = [p for p in root.glob("step-*") if p.is_file() and p.suffix in (".safetensors", *TORCH_SUFFIXES)]
    for layout, entries in (("store", store), ("hf-trainer", trainer), ("files", files)):
        found = _numbered(entries)
        if found:
            steps = sorted(found)
            paths = [found[s] / "model.safetensors" if layout == "store" else found[s] for s in steps]
            return CheckpointSeries(root, layout, steps, paths)
    raise ValueError(f"no checkpoints found in {root}: expected step-<N>/model.safetensors (a run's "
                     "checkpoints), checkpoint-<N>/ (Hugging Face Trainer) or step-<N>.safetensors files")


def _check_same_tensors(series: CheckpointSeries, readers: list[TensorReader]) -> None:
    """Every checkpoint holds the first one's floating-point tensors with the same shapes."""
    ref = {k: s for k, (s, d) in readers[0].info().items() if d is not None and d.is_floating_point}
    for step, path, reader in zip(series.steps[1:], series.paths[1:], readers[1:]):
        info = {k: s for k, (s, d) in reader.info().items() if d is not None and d.is_floating_point}
        missing, extra = sorted(set(ref) - set(info)), sorted(set(info) - set(ref))
        changed = sorted(k for k in set(ref) & set(info) if ref[k] != info[k])
        if missing or extra or changed:
            what = (f"tensor {changed[0]!r} has shape {info[changed[0]]} there but {ref[changed[0]]} at step "
                    f"{series.steps[0]}" if changed else f"tensors differ (missing {missing[:3]}, extra {extra[:3]})")
            raise ValueError(f"checkpoint {path} (step {step}) does not match the series: {what}. A series must "
                             "come from one model; pass a directory holding one run's checkpoints. Nothing was written.")


class _TensorsAsParameters:
    """A checkpoint's floating-point tensors seen as ``named_parameters`` (for ParameterRecorder)."""

    def __init__(self, reader: TensorReader):
        self.names = [k for k, (_, d) in reader.info().items() if d is not None and d.is_floating_point]
        self.reader = reader

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        return ((k, self.reader.tensor(k)) for k in self.names)


def _measure(series: CheckpointSeries, readers: list[TensorReader], project_dim: int, seed: int,
             progress: bool, analyze_kwargs: dict) -> tuple[list[xr.Dataset], list[torch.Tensor], dict]:
    recorder = ParameterRecorder(_TensorsAsParameters(readers[0]), project_dim=project_dim, seed=seed)
    spectra, vectors = [], []
    for reader in tqdm(readers, desc="checkpoints", disable=not progress):
        spectra.append(as_probe_dataset(analyze(reader.source, **analyze_kwargs)))
        vectors.append(recorder(_TensorsAsParameters(reader)))
    return spectra, vectors, recorder.attrs()


def import_checkpoints(directory: str | os.PathLike, store: RunStore, *, project_dim: int | None = 512,
                       seed: int = 0, progress: bool = False, **analyze_kwargs) -> Run:
    """Turn the checkpoint series in ``directory`` into a run of ``store`` (module docstring).

    Parameters
    ----------
    directory : the folder holding the checkpoints.
    store : the run store to write to.
    project_dim, seed : trajectory sketch dimension (None: every parameter) and its seed.
    progress : a progress bar over checkpoints.
    **analyze_kwargs : passed to :func:`workbench.spectrum.analyze` (e.g. ``bootstrap``).

    Returns
    -------
    The run (config ``kind="imported"``), with the metric group ``spectrum`` and the trajectory.
    """
    series = find_checkpoints(directory)
    readers = [open_weights(p) for p in series.paths]
    _check_same_tensors(series, readers)
    spectra, vectors, attrs = _measure(series, readers, project_dim, seed, progress, analyze_kwargs)
    config = {"kind": "imported", "source": str(series.source.resolve()), "layout": series.layout,
              "steps": series.steps, "trajectory": {"project_dim": project_dim, "seed": seed},
              "analyze": {k: v for k, v in analyze_kwargs.items() if isinstance(v, (int, float, str, bool))}}
    run = store.create(config)
    run.append(xr.concat([ds.expand_dims(step=[s]) for s, ds in zip(series.steps, spectra)], dim="step"),
               group="spectrum")
    for step, vec in zip(series.steps, vectors):
        run.append_trajectory(step, vec, attrs=attrs)
    last = spectra[-1]
    run.update_state(status="imported", step=series.steps[-1],
                     summary={k: float(np.nanmean(last[k].values)) for k in ("alpha", "stable_rank") if k in last})
    return run
