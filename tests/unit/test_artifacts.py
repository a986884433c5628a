"""Store-owned artifacts: atomic writes, validated kinds and names, the pre-artifact-area locations."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import xarray as xr

from workbench.artifacts import ArtifactNotFoundError, atomic_write_json, read_zarr, write_zarr
from workbench.store import RunStore


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def grid(value: float = 1.0) -> xr.Dataset:
    return xr.Dataset({"W": (("instance", "feature"), np.full((2, 3), value)),
                       "phase": ("instance", np.array(["dedicated", "superposition"]))},
                      coords={"instance": [0, 1]}, attrs={"n_hidden": 1})


def test_dataset_and_json_artifacts_round_trip(store):
    path = store.save_artifact("phase_diagram", "pd_2_1", grid())
    assert path == store.root / "artifacts" / "phase_diagram" / "pd_2_1.zarr"
    xr.testing.assert_identical(store.load_artifact("phase_diagram", "pd_2_1"), grid())
    assert store.load_artifact("phase_diagram", "pd_2_1")["phase"].dtype.kind == "U"  # zarr v2 strings
    store.save_artifact("sweep", "modular-sweep-abc", {"task": "modular", "points": [1, 2]})
    assert store.load_artifact("sweep", "modular-sweep-abc") == {"task": "modular", "points": [1, 2]}
    assert store.artifacts("sweep") == ["modular-sweep-abc"] and store.artifacts("toy_grid") == []
    assert store.ids() == []  # artifacts are not runs
    store.delete_artifact("sweep", "modular-sweep-abc")
    assert store.artifacts("sweep") == []


def test_unknown_artifact_names_the_known_ones(store):
    store.save_artifact("toy_grid", "small", grid())
    with pytest.raises(ArtifactNotFoundError, match=r"no toy_grid artifact 'big'.*\['small'\]"):
        store.load_artifact("toy_grid", "big")
    with pytest.raises(KeyError):
        store.load_artifact("toy_grid", "big")
    with pytest.raises(TypeError, match="Dataset or a JSON dict"):
        store.save_artifact("toy_grid", "x", [1, 2])


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "../x", "a/b", "/abs", "", ".hidden", "a b", "~x"])
def test_names_outside_the_area_are_refused_and_nothing_is_written(store, name):
    before = sorted(store.root.parent.rglob("*"))
    for call in (lambda: store.save_artifact("toy_grid", name, grid()),
                 lambda: store.save_artifact("sweep", name, {"a": 1}),
                 lambda: store.load_artifact("sweep", name),
                 lambda: store.delete_artifact("sweep", name)):
        with pytest.raises(ValueError, match="invalid"):
            call()
    assert sorted(store.root.parent.rglob("*")) == before


@pytest.mark.parametrize("kind", ["../runs", "Sweep", "a/b", "", "x" * 40])
def test_bad_kinds_are_refused(store, kind):
    with pytest.raises(ValueError, match="invalid artifact kind"):
        store.save_artifact(kind, "name", {"a": 1})


def test_zarr_write_is_atomic_a_failed_write_keeps_the_old_dataset(tmp_path, monkeypatch):
    path = tmp_path / "grid.zarr"
    write_zarr(path, grid(1.0))
    real = xr.Dataset.to_zarr

    def crash(self, store, *args, **kwargs):
        real(self, store, *args, **kwargs)
        raise OSError("disk full")  # died after writing the temporary copy, before the swap

    monkeypatch.setattr(xr.Dataset, "to_zarr", crash)
    with pytest.raises(OSError, match="disk full"):
        write_zarr(path, grid(2.0))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_zarr(path)["W"], 1.0)
    write_zarr(path, grid(3.0))  # the next write replaces it, and leaves no temporaries behind
    np.testing.assert_array_equal(read_zarr(path)["W"], 3.0)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.zarr"]


def test_json_write_is_atomic_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "record.json"
    atomic_write_json(path, {"v": 1})

    def crash(src, dst):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_json(path, {"v": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"v": 1}


def test_artifacts_written_before_the_artifact_area_still_open(store):
    # the old places: <root>/sweeps/<id>.json and <root>/superposition/<name>.zarr
    (store.root / "sweeps").mkdir()
    (store.root / "sweeps" / "old-sweep-1.json").write_text(json.dumps({"task": "modular"}))
    write_zarr(store.root / "superposition" / "phase_diagram_2_1.zarr", grid(5.0))
    assert store.load_artifact("sweep", "old-sweep-1") == {"task": "modular"}
    np.testing.assert_array_equal(store.load_artifact("phase_diagram", "phase_diagram_2_1")["W"], 5.0)
    assert store.artifacts("sweep") == ["old-sweep-1"]
    assert store.artifacts("phase_diagram") == ["phase_diagram_2_1"]
    # a new save goes to the artifact area and wins from then on; the listing has one entry
    store.save_artifact("sweep", "old-sweep-1", {"task": "modular", "status": "done"})
    assert store.load_artifact("sweep", "old-sweep-1")["status"] == "done"
    assert store.artifacts("sweep") == ["old-sweep-1"]
    store.delete_artifact("sweep", "old-sweep-1")  # from both places
    assert store.artifacts("sweep") == []


def test_toy_grid_save_and_load_use_the_same_format(tmp_path, store):
    from workbench.superposition import load, save

    save(grid(2.0), tmp_path / "toy.zarr")
    xr.testing.assert_identical(load(tmp_path / "toy.zarr"), grid(2.0))
    stored = store.save_artifact("toy_grid", "toy", grid(2.0))
    xr.testing.assert_identical(load(stored), grid(2.0))
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.zarr")
