"""Many-GPU neighbour search on whatever GPUs a GPU session has (one is enough to check
agreement)."""

import numpy as np
import pytest
import torch

from rascal_geom.neighbors import faiss_build, knn_search, visible_gpus

pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
needs_faiss_gpu = pytest.mark.skipif(faiss_build()["gpus"] < 1,
                                     reason="needs the FAISS GPU build and a GPU")


def _unit(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@needs_cuda
def test_torch_query_blocks_split_over_gpus_agree_with_cpu():
    x = _unit(3000, 32, 0)
    s_cpu, i_cpu = knn_search(x, x, 20, exclude_self=True, backend="torch", device="cpu")
    gpus = visible_gpus()
    # Every visible GPU, and GPU 0 listed twice: the round-robin over blocks runs even on one GPU.
    for devices in (gpus, [gpus[0], gpus[0]]):
        s, i = knn_search(x, x, 20, exclude_self=True, backend="torch", device="cuda",
                          devices=devices, chunk_size=256)
        np.testing.assert_allclose(s, s_cpu, atol=1e-4)
        assert (i == i_cpu).mean() > 0.999


@needs_faiss_gpu
def test_faiss_gpu_sharded_index_agrees_with_cpu():
    from rascal_geom.neighbors import _all_gpus

    import faiss

    x = _unit(3000, 32, 1)
    flat = faiss.IndexFlatIP(32)
    flat.add(x)
    s, i = _all_gpus(flat).search(x[:500], 10)
    s_cpu, i_cpu = knn_search(x[:500], x, 10, backend="faiss_cpu")
    np.testing.assert_allclose(s, s_cpu, atol=1e-4)
    assert (i == i_cpu).mean() > 0.999


@needs_faiss_gpu
def test_faiss_gpu_ivf_with_every_cell_probed_is_exact():
    x = _unit(3000, 32, 2)  # 4 cells, all probed
    s, i = knn_search(x, x, 10, exclude_self=True, backend="faiss_gpu", method="approx")
    s_cpu, i_cpu = knn_search(x, x, 10, exclude_self=True, backend="torch", device="cpu")
    np.testing.assert_allclose(s, s_cpu, atol=1e-4)
    assert (i == i_cpu).mean() > 0.999
