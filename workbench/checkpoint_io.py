"""Verified checkpoints: safetensors tensors + JSON state + a sha256 manifest, nothing pickled.

A checkpoint directory ``step-000001000/`` holds ``model.safetensors``, ``optimizer.safetensors``
(every tensor of the optimizer and extra state), ``state.json`` (their JSON skeleton, see
:mod:`workbench.serialization`) and ``manifest.json`` (sha256 of the three). It is written under a
temporary name and renamed into place; :func:`verified_dir` refuses a directory whose files do
not match their manifest.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from workbench.artifacts import atomic_write_json
from workbench.serialization import decode_state, encode_state

FILES = frozenset({"model.safetensors", "optimizer.safetensors", "state.json"})


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted or tampered with (sha256 mismatch)."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def step_dir(cdir: Path, step: int) -> Path:
    """The directory of the checkpoint at ``step`` inside ``cdir``."""
    return cdir / f"step-{step:09d}"


def checkpoint_steps(cdir: Path) -> list[int]:
    """Steps of the checkpoints in ``cdir``, ascending (temporaries are not listed)."""
    return sorted(int(p.name[5:]) for p in cdir.glob("step-*") if p.is_dir()) if cdir.exists() else []


def write_checkpoint(cdir: Path, step: int, model: torch.nn.Module, optimizer: Any = None,
                     extra: dict | None = None, *, keep: int = 3) -> Path:
    """Write one checkpoint into ``cdir`` atomically and keep only the newest ``keep``."""
    cdir.mkdir(exist_ok=True)
    final = step_dir(cdir, step)
    tmp = cdir / f".tmp-step-{step:09d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()},
              tmp / "model.safetensors")
    tensors: dict[str, torch.Tensor] = {}
    skeleton = encode_state({"optimizer": optimizer.state_dict() if optimizer is not None else None,
                             "extra": extra or {}}, tensors)
    save_file(tensors, tmp / "optimizer.safetensors")
    atomic_write_json(tmp / "state.json", {"step": step, "state": skeleton})
    atomic_write_json(tmp / "manifest.json", {f.name: sha256_file(f) for f in sorted(tmp.iterdir())})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_steps(cdir)[:-keep]:
        shutil.rmtree(step_dir(cdir, old), ignore_errors=True)
    return final


def verified_dir(cdir: Path, step: int | None, owner: str) -> Path:
    """The checkpoint directory at ``step`` (latest if None) after checking every file's sha256."""
    steps = checkpoint_steps(cdir)
    if not steps:
        raise CheckpointError(f"run {owner} has no checkpoint")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise CheckpointError(f"run {owner} has no checkpoint at step {step}; available: {steps}")
    sdir = step_dir(cdir, step)
    try:
        manifest = json.loads((sdir / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {sdir}: manifest.json is missing or unreadable ({exc})") from exc
    if set(manifest) != FILES:
        raise CheckpointError(f"checkpoint {sdir}: manifest lists {sorted(manifest)}, expected {sorted(FILES)}")
    for name, digest in manifest.items():
        f = sdir / name
        if not f.exists() or sha256_file(f) != digest:
            raise CheckpointError(
                f"checkpoint file {f} failed its sha256 check (corrupted or tampered with); refusing to load it")
    return sdir


def read_checkpoint(sdir: Path, device: str | torch.device = "cpu") -> dict:
    """``{step, model, optimizer, extra}`` from a verified checkpoint directory."""
    tensors = load_file(sdir / "optimizer.safetensors", device=str(device))
    meta = json.loads((sdir / "state.json").read_text())
    state = decode_state(meta["state"], tensors)
    return {"step": meta["step"], "model": load_file(sdir / "model.safetensors", device=str(device)),
            "optimizer": state["optimizer"], "extra": state["extra"]}
