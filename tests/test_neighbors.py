import numpy as np
import pytest

from rascal_geom.neighbors import grouped_knn, knn_search
from rascal_train.errors import RascalError


def _unit(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(q, b, k):
    s = q.astype(np.float64) @ b.astype(np.float64).T
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, 1), idx


@pytest.mark.parametrize("backend", ["torch", "faiss_cpu"])
def test_matches_brute_force(backend):
    q, b = _unit(300, 32, 0), _unit(1000, 32, 1)
    sims, idx = knn_search(q, b, 15, backend=backend, chunk_size=64)
    ref_s, ref_i = _brute(q, b, 15)
    assert sims.dtype == np.float32 and idx.dtype == np.int64 and idx.shape == (300, 15)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(sims, ref_s, atol=1e-5)


def test_backends_agree_and_large_k():
    x = _unit(2500, 16, 2)
    # k above FAISS GPU's 2,048 limit: the torch path must serve it (same answer as faiss CPU).
    s1, i1 = knn_search(x, x, 2100, exclude_self=True, backend="torch")
    s2, i2 = knn_search(x, x, 2100, exclude_self=True, backend="faiss_cpu")
    np.testing.assert_allclose(s1, s2, atol=1e-5)
    assert (i1 == i2).mean() > 0.999  # equal up to float ties
    assert not (i1 == np.arange(2500)[:, None]).any()


def test_exclude_self_with_duplicates():
    x = np.repeat(_unit(10, 8, 3), 3, axis=0)  # every row has two exact duplicates
    _, idx = knn_search(x, x, 2, exclude_self=True, backend="torch")
    assert not (idx == np.arange(30)[:, None]).any()
    np.testing.assert_array_equal(idx // 3, np.repeat(np.arange(10), 3)[:, None].repeat(2, 1))


def test_grouped_knn_stays_in_group_and_pads():
    x = _unit(50, 8, 4)
    groups = np.r_[np.zeros(47, int), np.ones(3, int)]
    sims, idx = grouped_knn(x, groups, 5, backend="torch")
    assert (groups[idx[:47]] == 0).all()
    assert (idx[47:, 2:] == -1).all() and np.isinf(sims[47:, 2:]).all()
    _ref_s, ref_i = _brute(x[:47], x[:47], 6)
    np.testing.assert_array_equal(idx[:47], ref_i[:, 1:])


def test_bad_k_is_one_line_error():
    x = _unit(5, 4, 5)
    with pytest.raises(RascalError, match="'k' parameter"):
        knn_search(x, x, 5, exclude_self=True)


@pytest.mark.gpu
def test_torch_on_cuda_matches_faiss_cpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = _unit(3000, 64, 6)
    s1, i1 = knn_search(x, x, 50, exclude_self=True, backend="torch")  # on CUDA here
    s2, i2 = knn_search(x, x, 50, exclude_self=True, backend="faiss_cpu")
    np.testing.assert_allclose(s1, s2, atol=1e-4)
    assert (i1 == i2).mean() > 0.999


# --- devices, memory and the FAISS build --------------------------------------------------------

def test_query_blocks_are_sized_from_memory(monkeypatch):
    import torch

    from rascal_geom.neighbors import chunk_rows

    cpu = torch.device("cpu")
    assert chunk_rows(50_000, cpu) == 2048  # the former fixed block, unchanged on the CPU
    assert chunk_rows(1_281_167, cpu) == (1 << 30) // (4 * 1_281_167)  # 1 GiB of similarities
    # An 80 GB GPU with 60 GB free and 4 GB held in torch's cache: a quarter of 64 GB per block.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (60e9, 80e9))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 6e9)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2e9)
    gpu = torch.device("cuda", 0)
    assert chunk_rows(1_281_167, gpu) == int(0.25 * 64e9 // (4 * 1_281_167))
    assert chunk_rows(10_000, gpu) == 8192


def test_search_results_do_not_depend_on_the_block_size():
    x = _unit(700, 16, 7)
    s1, i1 = knn_search(x, x, 9, exclude_self=True, backend="torch", chunk_size=50, device="cpu")
    s2, i2 = knn_search(x, x, 9, exclude_self=True, backend="torch", device="cpu")
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)


def _fake_faiss(monkeypatch, installed, gpu_build):
    import importlib.metadata
    import sys
    import types

    fake = types.ModuleType("faiss")
    fake.__version__ = "1.15.1"
    fake.get_num_gpus = lambda: 1
    if gpu_build:
        fake.StandardGpuResources = object
    monkeypatch.setitem(sys.modules, "faiss", fake)

    def version(name):
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return "1.15.1"

    monkeypatch.setattr(importlib.metadata, "version", version)


def test_both_faiss_builds_installed_is_named(monkeypatch):
    from rascal_geom.neighbors import backend_note, faiss_build

    _fake_faiss(monkeypatch, {"faiss-cpu", "faiss-gpu"}, gpu_build=False)
    info = faiss_build()
    assert info["build"] == "cpu" and info["installed"] == ["faiss-cpu 1.15.1", "faiss-gpu 1.15.1"]
    assert "share the faiss package, so the cpu build loaded" in info["conflict"]
    note = backend_note("torch", device="cpu")
    assert note.startswith("neighbour search: torch on cpu (faiss-cpu 1.15.1, faiss-gpu 1.15.1: "
                           "the CPU build)")
    assert "warning: faiss-cpu 1.15.1 and faiss-gpu 1.15.1 are installed" in note
    assert "\n" not in note


def test_gpu_build_alone_is_chosen_and_said(monkeypatch):
    from rascal_geom import neighbors

    _fake_faiss(monkeypatch, {"faiss-gpu"}, gpu_build=True)
    monkeypatch.delenv("RASCAL_KNN_BACKEND", raising=False)
    neighbors.select_backend.cache_clear()
    try:
        assert neighbors.select_backend() == "faiss_gpu"
        assert neighbors.faiss_build()["conflict"] is None
        assert neighbors.backend_note() == ("neighbour search: FAISS 1.15.1 GPU build, "
                                            "1 GPU(s) visible")
    finally:
        neighbors.select_backend.cache_clear()


@pytest.mark.gpu
def test_faiss_gpu_backend_matches_torch_on_cuda():
    import torch

    from rascal_geom.neighbors import faiss_build

    if not torch.cuda.is_available() or faiss_build()["build"] != "gpu":
        pytest.skip("needs CUDA and the FAISS GPU build")
    x = _unit(20_000, 128, 8)
    s1, i1 = knn_search(x, x, 20, exclude_self=True, backend="faiss_gpu", device="cuda")
    s2, i2 = knn_search(x, x, 20, exclude_self=True, backend="torch", device="cuda")
    np.testing.assert_allclose(s1, s2, atol=1e-4)
    assert (i1 == i2).mean() > 0.999


@pytest.mark.gpu
def test_knn_blocks_on_cuda_fit_and_match_the_cpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from rascal_geom.neighbors import chunk_rows

    x = _unit(30_000, 64, 9)
    rows = chunk_rows(30_000, torch.device("cuda", torch.cuda.current_device()))
    assert 1 <= rows <= 8192
    s1, i1 = knn_search(x, x, 20, exclude_self=True, backend="torch", device="cuda")
    s2, i2 = knn_search(x[:3000], x, 21, backend="torch", device="cpu")
    np.testing.assert_allclose(s1[:3000], s2[:, 1:], atol=1e-4)
