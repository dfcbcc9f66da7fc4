import numpy as np
import pytest
import torch

from rascal_geom.embeddings import (
    EmbeddingSet,
    cache_path,
    extract_embeddings,
    load_embeddings,
    load_npz,
    save_npz,
)
from rascal_train.errors import RascalError


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_levels_ordered_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    fine = rng.integers(0, 6, 50)
    p = _write(tmp_path / "e.npz", embeddings=rng.standard_normal((50, 4)), labels_fine=fine,
               labels_coarse=fine // 3, attributes=rng.integers(0, 2, (50, 3)),
               attribute_names=np.array(["a::x", "a::y", "b::z"]))
    emb = load_npz(p)
    assert emb.levels == ["coarse", "fine"]  # ordered by number of classes
    assert emb.embeddings.dtype == np.float32 and emb.attributes.dtype == bool
    assert emb.class_names["fine"] == [str(i) for i in range(6)]
    save_npz(tmp_path / "f.npz", emb)
    back = load_npz(tmp_path / "f.npz")
    assert back.levels == emb.levels and back.attribute_names == ["a::x", "a::y", "b::z"]
    np.testing.assert_array_equal(back.labels["fine"], fine)
    np.testing.assert_array_equal(back.embeddings, emb.embeddings)


def test_single_labels_array_and_explicit_levels(tmp_path):
    e = np.eye(3)[np.arange(9) % 3]
    assert load_npz(_write(tmp_path / "a.npz", embeddings=e,
                           labels=np.arange(9) % 3)).levels == ["label"]
    p = _write(tmp_path / "b.npz", embeddings=e, labels_x=np.arange(9) % 3,
               labels_y=np.zeros(9, int), levels=np.array(["x", "y"]))
    assert load_npz(p).levels == ["x", "y"]


@pytest.mark.parametrize("arrays,match", [
    ({"labels": np.zeros(5, int)}, "no 'embeddings'"),
    ({"embeddings": np.zeros((5, 2))}, "has no labels"),
    ({"embeddings": np.zeros((5, 2)), "labels": np.zeros(4, int)},
     "expected non-negative integers of shape"),
    ({"embeddings": np.zeros((5, 2)), "labels": np.zeros(5)}, "dtype float64"),
    ({"embeddings": np.zeros((5, 2)), "labels": np.zeros(5, int), "attributes": np.zeros((4, 2))},
     "attributes"),
    ({"embeddings": np.zeros((5, 2)), "labels": np.zeros(5, int), "labels_x": np.zeros(5, int)},
     "keep one form"),
])
def test_invalid_files_are_one_line_errors(tmp_path, arrays, match):
    with pytest.raises(RascalError, match=match) as err:
        load_npz(_write(tmp_path / "bad.npz", **arrays))
    assert "\n" not in str(err.value)


def test_pickled_or_wrong_files_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, embeddings=np.array([{"a": 1}], dtype=object))
    with pytest.raises(RascalError, match="without pickled objects"):
        load_npz(p)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(RascalError, match="neither an embedding file"):
        load_embeddings(tmp_path / "x.txt")


@pytest.fixture
def checkpoint(tmp_path):
    from rascal_train.files import atomic_torch_save
    from rascal_train.models import CHECKPOINT_FORMAT, build_model

    torch.manual_seed(0)
    config = {"dataset": "synthetic", "arch": "small_cnn", "loss": "supcon", "proj_dim": 16,
              "image_size": 32, "label_level": "family"}
    model = build_model(config)
    path = tmp_path / "run" / "checkpoints" / "epoch_0001.pt"
    atomic_torch_save({"format": CHECKPOINT_FORMAT, "config": config, "epoch": 1,
                       "model": model.state_dict()}, path)
    (tmp_path / "run" / "config.json").write_text("{}")
    return path, model


def test_extract_runs_model_once_then_reads_cache(checkpoint, tmp_path, monkeypatch):
    import rascal_train.datasets
    from rascal_train.datasets import get_dataset
    from rascal_train.transforms import normalize_batch

    path, model = checkpoint
    emb = extract_embeddings(path, split="test", cache_dir=tmp_path / "cache", progress=False)
    ds = get_dataset("synthetic", split="test")
    assert (isinstance(emb, EmbeddingSet) and len(emb) == len(ds)
            and emb.levels == ["family", "variant"])
    assert emb.embeddings.shape[1] == 16 and emb.features.shape[1] == model.feature_dim
    np.testing.assert_allclose(np.linalg.norm(emb.embeddings, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        f = model.eval().encoder(normalize_batch(torch.from_numpy(ds.images[:8])))
        z = torch.nn.functional.normalize(model.project(f), dim=1)
    np.testing.assert_allclose(emb.embeddings[:8], z.numpy(), atol=1e-4)
    np.testing.assert_array_equal(emb.attributes, ds.attributes)
    assert emb.source["epoch"] == 1 and emb.source["run_dir"] == str(path.parent.parent.resolve())
    assert cache_path(path, "test", tmp_path / "cache").is_file()

    import rascal_train.models

    def boom(_):
        raise AssertionError("the model ran again")

    monkeypatch.setattr(rascal_train.models, "model_from_checkpoint", boom)
    again = extract_embeddings(path, split="test", cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(again.embeddings, emb.embeddings)
    assert again.source["config"]["arch"] == "small_cnn"
    assert again.source["extraction"] == emb.source["extraction"]
    assert emb.source["extraction"]["precision"] == "float32"


def test_cache_key_covers_everything_that_changes_the_embeddings(checkpoint, tmp_path, monkeypatch):
    from rascal_train.files import atomic_torch_save, load_checkpoint

    path, _ = checkpoint
    base = cache_path(path, "test", tmp_path / "cache", device="cpu")
    assert cache_path(path, "test", tmp_path / "cache", device="cpu") == base  # deterministic
    changed = {
        "split": cache_path(path, "train", tmp_path / "cache", device="cpu"),
        "data root": cache_path(path, "test", tmp_path / "cache", data_root=tmp_path, device="cpu"),
    }
    # Only the key is computed: a GPU is mocked as far as resolving "cuda" looks.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    changed["device"] = cache_path(path, "test", tmp_path / "cache", device="cuda")
    monkeypatch.undo()
    # The weights, and every config setting that selects or transforms the data, live in the
    # checkpoint: the same weights under another --limit / imbalance / noise / image size are
    # another file, hence another key.
    ckpt = load_checkpoint(path)
    for name, value in (("limit", 100), ("imbalance", 10.0), ("label_noise", 0.2),
                        ("image_size", 24), ("label_level", "variant"), ("dataset", "cifar100")):
        other = tmp_path / f"{name}.pt"
        atomic_torch_save({**ckpt, "config": {**ckpt["config"], name: value}}, other)
        changed[name] = cache_path(other, "test", tmp_path / "cache", device="cpu")
    edited = tmp_path / "edited.pt"
    edited.write_bytes(path.read_bytes() + b"\0")
    changed["checkpoint bytes"] = cache_path(edited, "test", tmp_path / "cache", device="cpu")
    assert base not in changed.values() and len(set(changed.values())) == len(changed), changed


def test_another_data_root_misses_the_cache(checkpoint, tmp_path, monkeypatch):
    import rascal_train.features

    path, _ = checkpoint
    seen = []
    real = rascal_train.features.extract_features

    def spy(*args, **kwargs):
        seen.append(kwargs["precision"])
        return real(*args, **kwargs)

    monkeypatch.setattr(rascal_train.features, "extract_features", spy)
    extract_embeddings(path, split="test", cache_dir=tmp_path / "cache", progress=False)
    extract_embeddings(path, split="test", cache_dir=tmp_path / "cache", progress=False)
    assert seen == ["fp32"]  # the second call read the cache; the first extracted in float32
    elsewhere = tmp_path / "data"
    elsewhere.mkdir()
    emb = extract_embeddings(path, split="test", data_root=elsewhere, cache_dir=tmp_path / "cache",
                             progress=False)
    assert (seen == ["fp32", "fp32"]
            and emb.source["extraction"]["data_root"] == str(elsewhere.resolve()))
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
