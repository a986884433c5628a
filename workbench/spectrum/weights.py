"""Weights from memory or disk, one tensor at a time: state dicts, safetensors, HF dirs, torch files.

A *reader* lists every tensor's shape and dtype without reading data (``info()``) and loads one
tensor on request (``tensor(key)``), so an analysis holds about one layer in memory, not the model:

- :class:`StateDictReader` — tensors already in memory (a ``state_dict``, or a module's tensors);
- :class:`SafetensorsReader` — one or more ``.safetensors`` files (a sharded Hugging Face model via
  its ``model.safetensors.index.json``); each read memory-maps the file (``safe_open``), copies
  the one tensor and unmaps it again, so the file's pages do not pile up in the resident set;
- :class:`TorchFileReader` — a torch checkpoint (``.pt``/``.pth``/``.bin``/``.ckpt``), loaded with
  ``torch.load(weights_only=True)`` (never arbitrary pickle), memory-mapped per read where the
  file is in the zip format (torch >= 1.6), whole (once) for the legacy format.

:func:`open_weights` picks the reader for a path; every failure is a :class:`WeightsError`
naming the file and the remedy. Readers of files are picklable (Dask workers read for themselves).
"""
from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import torch
from safetensors import SafetensorError, safe_open

__all__ = ["SafetensorsReader", "StateDictReader", "TensorInfo", "TensorReader", "TorchFileReader",
           "WeightsError", "open_weights"]

TensorInfo = dict[str, tuple[tuple[int, ...], torch.dtype | None]]  # None: a dtype torch lacks
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                      "BF16": torch.bfloat16, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                      "U8": torch.uint8, "BOOL": torch.bool}
NESTED_STATE_KEYS = ("state_dict", "model_state_dict", "model", "module")


class WeightsError(ValueError):
    """A path that holds no readable model weights; the message names the file and the remedy."""


class TensorReader(Protocol):
    """Where an analysis reads tensors from: see the module docstring."""

    source: str

    def info(self) -> TensorInfo: ...

    def tensor(self, key: str) -> torch.Tensor: ...


def natural_key(name: str) -> list:
    """Sort key putting ``layer.2`` before ``layer.10``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


class StateDictReader:
    """Tensors in memory (``{name: tensor}``), detached, in the mapping's order."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], source: str = "state dict"):
        bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise TypeError(f"a state dict maps names to tensors; {bad[:3]} are not tensors")
        self.tensors, self.source = {k: v.detach() for k, v in tensors.items()}, source

    def info(self) -> TensorInfo:
        return {k: (tuple(v.shape), v.dtype) for k, v in self.tensors.items()}

    def tensor(self, key: str) -> torch.Tensor:
        return self.tensors[key]


class SafetensorsReader:
    """Tensors of one or more safetensors files; ``files`` maps each tensor name to its file."""

    def __init__(self, files: Mapping[str, Path], source: str):
        self.files, self.source = dict(files), source

    @classmethod
    def from_files(cls, paths: list[Path], source: str) -> SafetensorsReader:
        files: dict[str, Path] = {}
        for path in paths:
            files.update(dict.fromkeys(_safetensors_keys(path), path))
        return cls(files, source)

    def info(self) -> TensorInfo:
        out: TensorInfo = {}
        for path in dict.fromkeys(self.files.values()):
            with _safe_open(path) as f:
                for key in f.keys():
                    if self.files.get(key) == path:
                        sl = f.get_slice(key)
                        out[key] = (tuple(sl.get_shape()), SAFETENSORS_DTYPES.get(sl.get_dtype()))
        return {k: out[k] for k in sorted(out, key=natural_key)}

    def tensor(self, key: str) -> torch.Tensor:
        with _safe_open(self.files[key]) as f:
            return f.get_tensor(key)


class TorchFileReader:
    """Tensors of one torch checkpoint, loaded with ``weights_only=True``."""

    def __init__(self, path: Path):
        self.path, self.source = Path(path), str(path)
        self._whole: dict[str, torch.Tensor] | None = None
        self.mmap = _load_state(self.path, mmap=True) is not None or self._load_whole()

    def _load_whole(self) -> bool:
        self._whole = _load_state(self.path, mmap=False)
        return False

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_whole": None}

    def _state(self) -> dict[str, torch.Tensor]:
        if self.mmap:
            return _load_state(self.path, mmap=True)  # type: ignore[return-value]
        if self._whole is None:
            self._load_whole()
        return self._whole  # type: ignore[return-value]

    def info(self) -> TensorInfo:
        return {k: (tuple(v.shape), v.dtype) for k, v in self._state().items()}

    def tensor(self, key: str) -> torch.Tensor:
        return self._state()[key]


def _safe_open(path: Path):
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}); it may be truncated "
                           "or not a model at all: re-download or re-save it") from exc


def _safetensors_keys(path: Path) -> list[str]:
    if not path.is_file():
        raise WeightsError(f"{path} does not exist")
    with _safe_open(path) as f:
        return list(f.keys())


def _load_state(path: Path, *, mmap: bool) -> dict[str, torch.Tensor] | None:
    """The state dict in a torch checkpoint (``weights_only=True``); None where ``mmap`` is asked
    of a legacy-format file, which cannot be memory-mapped."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # not a pickle of Python objects at all
            detail = next((ln for ln in reversed(str(exc).splitlines()) if ln.strip() and not ln.startswith("Check")), "")
            raise WeightsError(f"{path} is not a readable torch checkpoint ({detail.strip()}); "
                               "expected a file written by torch.save(model.state_dict(), path)") from exc
        raise WeightsError(
            f"{path} needs pickle to load (it holds Python objects, not only tensors), and pickle "
            "can run arbitrary code, so it is refused. If you trust the file, load it yourself "
            "(torch.load(path, weights_only=False)) and pass the model or its state_dict, or "
            "re-save its state_dict with safetensors.torch.save_file") from exc
    except RuntimeError as exc:
        if mmap and "mmap" in str(exc):
            return None
        raise WeightsError(f"{path} is not a readable torch checkpoint ({exc}); re-save it with "
                           "torch.save(model.state_dict(), path) or safetensors") from exc
    except Exception as exc:  # torch.load raises many types on a file that is no checkpoint
        raise WeightsError(f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {exc}); "
                           "expected a file written by torch.save(model.state_dict(), path)") from exc
    return _find_state_dict(obj, path)


def _find_state_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: a flat ``{name: tensor}``, or one under ``state_dict`` /
    ``model_state_dict`` / ``model`` / ``module`` (Lightning and common training scripts)."""
    if isinstance(obj, Mapping):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
        for key in NESTED_STATE_KEYS:
            if isinstance(obj.get(key), Mapping):
                return _find_state_dict(obj[key], path)
    kind = f"a dict with keys {list(obj)[:8]}" if isinstance(obj, Mapping) else type(obj).__name__
    raise WeightsError(f"{path} holds no tensors ({kind}); save the model's state_dict: "
                       "torch.save(model.state_dict(), path)")


def _index_files(index: Path) -> dict[str, Path]:
    """``weight_map`` of a Hugging Face shard index, checked: every shard exists."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{index} is not a shard index with a 'weight_map' ({exc}); "
                           "re-download it with the model") from exc
    files = {k: index.parent / v for k, v in weight_map.items()}
    missing = sorted({str(p) for p in files.values() if not p.is_file()})
    if missing:
        first = next(k for k, p in files.items() if str(p) == missing[0])
        raise WeightsError(f"shard index {index} maps tensors (e.g. {first!r}) to {missing}, which "
                           "do not exist: download the missing shard(s) or fix the index")
    return files


def _from_index(index: Path) -> TensorReader:
    files = _index_files(index)
    if all(p.suffix == ".safetensors" for p in files.values()):
        for path in dict.fromkeys(files.values()):
            _safetensors_keys(path)  # every shard readable, before any analysis starts
        return SafetensorsReader(files, str(index.parent))
    raise WeightsError(f"{index} indexes torch shards; convert them to safetensors (one reader per "
                       "file is supported: pass a single .bin) or pass the loaded state_dict")


def _from_dir(path: Path) -> TensorReader:
    for name in ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                 "pytorch_model.bin"):
        if (path / name).is_file():
            return open_weights(path / name)
    found = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", *TORCH_SUFFIXES))
    if len(found) == 1:
        return open_weights(found[0])
    listing = sorted(p.name for p in path.iterdir())[:10]
    what = f"several weight files {[p.name for p in found]}" if found else f"only {listing}" if listing else "nothing"
    raise WeightsError(f"no model weights found in directory {path} (it holds {what}); expected "
                       "model.safetensors, model.safetensors.index.json, pytorch_model.bin or a single "
                       "*.safetensors / *.pt file: pass the file you mean")


def open_weights(path: str | os.PathLike) -> TensorReader:
    """The reader for a weights file or a model directory (see the module docstring)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsError(f"{path} does not exist: pass a model directory, a .safetensors file or "
                           "a torch checkpoint")
    if path.is_dir():
        return _from_dir(path)
    if path.name.endswith(".index.json"):
        return _from_index(path)
    if path.suffix == ".safetensors":
        return SafetensorsReader.from_files([path], str(path))
    if path.suffix in TORCH_SUFFIXES:
        return TorchFileReader(path)
    raise WeightsError(f"{path} is not a model file: expected a .safetensors file, a torch checkpoint "
                       f"({'/'.join(TORCH_SUFFIXES)}), a shard index (*.index.json) or a model directory")
