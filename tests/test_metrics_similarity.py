import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from rascal_geom.metrics import cka, cka_matrix, minibatch_cka, shape_distances
from rascal_geom.metrics import similarity
from rascal_train.errors import RascalError


def _pair(seed=0, n=40, dx=7, dy=5, noise=0.5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dx)) + 3.0  # off-centre on purpose: centring is the function's job
    y = x[:, :dy] @ rng.standard_normal((dy, dy)) + noise * rng.standard_normal((n, dy)) - 1.0
    return x, y


def _ref_hsic(k, g, debiased):
    """Explicit n x n restatements: H K H for the biased estimator, Song et al.'s U-statistic on the
    raw (uncentred) Grams for the unbiased one."""
    n = len(k)
    if not debiased:
        h = np.eye(n) - 1.0 / n
        return np.trace(h @ k @ h @ g) / (n - 1) ** 2
    kt, gt = k - np.diag(np.diag(k)), g - np.diag(np.diag(g))
    one = np.ones(n)
    return (np.trace(kt @ gt) + (one @ kt @ one) * (one @ gt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * one @ kt @ gt @ one) / (n * (n - 3))


def _ref_cka(x, y, debiased):
    k, g = x @ x.T, y @ y.T
    return _ref_hsic(k, g, debiased) / np.sqrt(_ref_hsic(k, k, debiased)
                                               * _ref_hsic(g, g, debiased))


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("dx", [7, 60])  # 60 > n: the Gram form; 7: the feature form
def test_cka_matches_gram_restatement(debiased, dx, monkeypatch):
    monkeypatch.setattr(similarity, "_BLOCK_ENTRIES", 64)  # many row blocks
    x, y = _pair(1, dx=dx)
    assert cka(x, y, debiased=debiased) == pytest.approx(_ref_cka(x, y, debiased), rel=1e-10)
    assert cka(y, x, debiased=debiased) == pytest.approx(cka(x, y, debiased=debiased), rel=1e-12)


def test_cka_orthogonal_and_scale_invariance_and_float32():
    x, _ = _pair(2, n=300, dx=12)
    q = ortho_group.rvs(12, random_state=0)
    for debiased in (False, True):
        assert cka(x, 3.7 * x @ q + 5.0, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    x, y = _pair(3, n=500)
    assert cka(x.astype(np.float32), y.astype(np.float32)) == pytest.approx(cka(x, y), abs=1e-5)
    assert cka(torch.from_numpy(x), y) == cka(x, y)


def test_debiased_cka_of_independent_sets_is_near_zero():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((128, 512)), rng.standard_normal((128, 512))
    assert cka(x, y) > 0.7  # the biased estimator's offset (Nguyen et al. 2021: about 0.8)
    assert abs(cka(x, y, debiased=True)) < 0.03


def test_cka_matrix():
    x, y = _pair(4, dx=9, dy=4)
    z = np.random.default_rng(5).standard_normal((40, 3))
    m = cka_matrix([x, y], [y, z, x])
    for i, a in enumerate([x, y]):
        for j, b in enumerate([y, z, x]):
            assert m[i, j] == pytest.approx(cka(a, b), rel=1e-12)
    own = cka_matrix([x, y, z], debiased=True)
    assert np.allclose(own, own.T) and np.allclose(np.diag(own), 1.0)
    assert own[0, 1] == pytest.approx(cka(x, y, debiased=True), rel=1e-12)


def test_minibatch_cka():
    x, y = _pair(6, n=103, dx=6, dy=6, noise=1.0)
    one = minibatch_cka(x, y, batch_size=500)
    assert one["n_batches"] == 1 and one["cka"] == pytest.approx(cka(x, y, debiased=True),
                                                                 rel=1e-12)
    out = minibatch_cka(x, y, batch_size=25, seed=3)
    assert out["n_batches"] == 4 and out["batch_size"] == 25
    batches = np.array_split(np.random.default_rng(3).permutation(103), 4)
    h = np.array([[_ref_hsic(a @ a.T, b @ b.T, True)
                   for a, b in ((x[r], y[r]), (x[r], x[r]), (y[r], y[r]))]
                  for r in batches]).mean(0)
    assert out["cka"] == pytest.approx(h[0] / np.sqrt(h[1] * h[2]), rel=1e-10)


def _netrep_whiten(x, alpha):
    """netrep.utils.whiten restated (variance-preserving partial whitening)."""
    lam, v = np.linalg.eigh(x.T @ x)
    lam = np.maximum(lam, 1e-7)
    d = alpha + (1 - alpha) * lam ** -0.5
    d *= np.sqrt(lam.sum()
                 / (alpha ** 2 * lam + 2 * alpha * (1 - alpha) * lam ** 0.5
                    + (1 - alpha) ** 2).sum())
    return x @ (v * d) @ v.T


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_shape_distances_match_explicit_alignment(alpha):
    x, y = _pair(7, n=80, dx=6, dy=4, noise=2.0)
    xw = _netrep_whiten(x - x.mean(0), alpha)
    # zero-pad the narrower side
    yw = np.pad(_netrep_whiten(y - y.mean(0), alpha), ((0, 0), (0, 2)))
    xw, yw = xw / np.linalg.norm(xw), yw / np.linalg.norm(yw)
    q, _ = orthogonal_procrustes(yw, xw)
    aligned = yw @ q
    out = shape_distances(x, y, alpha=alpha)
    assert out["procrustes"] == pytest.approx(np.linalg.norm(xw - aligned), rel=1e-8)
    assert out["angular"] == pytest.approx(np.arccos(np.clip((xw * aligned).sum(), -1, 1)),
                                           rel=1e-8)
    assert 0 < out["angular"] < np.pi / 2


def test_shape_distances_analytic_cases():
    x, _ = _pair(8, n=200, dx=10)
    q = ortho_group.rvs(10, random_state=1)
    rotated = shape_distances(x, 2.5 * x @ q - 4.0)
    assert (rotated["procrustes"] == pytest.approx(0.0, abs=1e-6)
            and rotated["angular"] == pytest.approx(0.0, abs=1e-6))
    a = np.random.default_rng(2).standard_normal((10, 10))  # invertible, not orthogonal
    assert shape_distances(x, x @ a, alpha=1.0)["procrustes"] > 0.05
    assert shape_distances(x, x @ a, alpha=0.0)["procrustes"] == pytest.approx(0.0, abs=1e-5)


def test_similarity_input_errors():
    x, y = _pair(9)
    with pytest.raises(RascalError, match="same samples"):
        cka(x, y[:-1])
    with pytest.raises(RascalError, match="NaN"):
        cka(np.where(np.eye(40, 7) > 0, np.nan, x), y)
    with pytest.raises(RascalError, match="at least 4"):
        cka(x[:3], y[:3], debiased=True)
    with pytest.raises(RascalError, match="'alpha'"):
        shape_distances(x, y, alpha=1.5)
    with pytest.raises(RascalError, match="'batch_size'"):
        minibatch_cka(x, y, batch_size=2)
    with pytest.raises(RascalError, match="constant"):
        shape_distances(np.ones((40, 3)), y)
