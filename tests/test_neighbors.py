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
