"""Large embedding files are memory-mapped, not copied; float16 storage is accepted."""

import numpy as np
import pytest

from rascal_geom.embeddings import load_npz


def _write(path, x, compressed=False):
    y = np.arange(len(x)) % 3
    (np.savez_compressed if compressed else np.savez)(path, embeddings=x, labels=y,
                                                      features=x[:, :4])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_uncompressed_members_are_memory_mapped(tmp_path, dtype):
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(dtype)
    _write(tmp_path / "e.npz", x)
    emb = load_npz(tmp_path / "e.npz")
    for arr, ref in ((emb.embeddings, x), (emb.features, x[:, :4])):
        assert isinstance(arr, np.memmap) and arr.dtype == dtype and not arr.flags.writeable
        np.testing.assert_array_equal(arr, ref)
    # Two loads map the same file pages: no private copy was made.
    again = load_npz(tmp_path / "e.npz")
    assert again.embeddings.filename == emb.embeddings.filename
    assert emb.embeddings.offset == again.embeddings.offset > 0


def test_compressed_members_are_read_into_memory(tmp_path):
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    _write(tmp_path / "c.npz", x, compressed=True)
    emb = load_npz(tmp_path / "c.npz")
    assert not isinstance(emb.embeddings, np.memmap)
    np.testing.assert_array_equal(emb.embeddings, x)


def test_other_dtypes_become_float32(tmp_path):
    x = np.random.default_rng(0).standard_normal((20, 4))
    _write(tmp_path / "d.npz", x)
    emb = load_npz(tmp_path / "d.npz")
    assert emb.embeddings.dtype == np.float32
    np.testing.assert_allclose(emb.embeddings, x, rtol=1e-6)


def test_float16_file_analyses_like_its_float32_widening(tmp_path):
    from rascal_geom.analysis import analyze

    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 300)
    x = (rng.standard_normal((4, 16))[y] + 0.5 * rng.standard_normal((300, 16))).astype(np.float16)
    np.savez(tmp_path / "h.npz", embeddings=x, labels=y)
    np.savez(tmp_path / "f.npz", embeddings=x.astype(np.float32), labels=y)
    half = analyze(tmp_path / "h.npz", umap=False, progress=False)
    full = analyze(tmp_path / "f.npz", umap=False, progress=False)
    assert half["metrics"]["knn_accuracy"] == full["metrics"]["knn_accuracy"]
    assert half["headline"]["geodesic_variance"] == pytest.approx(
        full["headline"]["geodesic_variance"])
