import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from rascal_geom.metrics import average_ranks, rank_stability


def _data(seed, n=120, d=12, c=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    a = rng.standard_normal((n, d)) + 2 * rng.standard_normal((c, d))[y]
    b = a + 0.7 * rng.standard_normal((n, d))
    return a, b, y


def _reference(a, b, y):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    rhos, drifts = [], []
    for i in range(len(a)):
        others = [j for j in np.flatnonzero(y == y[i]) if j != i]
        n_c = len(others) + 1
        if n_c < 3:
            continue
        ra = rankdata(-(a[others] @ a[i]), method="average") - 1
        rb = rankdata(-(b[others] @ b[i]), method="average") - 1
        rhos.append(spearmanr(a[others] @ a[i], b[others] @ b[i]).statistic)
        drifts.append(np.abs(ra - rb).mean() / (n_c - 2))
    return np.mean(rhos), np.mean(drifts)


def test_average_ranks_equals_scipy_with_ties():
    x = np.random.default_rng(0).integers(0, 5, (50, 17)).astype(float)
    np.testing.assert_array_equal(average_ranks(x), rankdata(-x, method="average", axis=1) - 1)


def test_matches_scipy_restatement():
    a, b, y = _data(1)
    out = rank_stability(a, b, y)
    rho, drift = _reference(a, b, y)
    assert out["spearman"] == pytest.approx(rho, abs=1e-10)
    assert out["drift"] == pytest.approx(drift, abs=1e-10)
    assert 0.2 < out["spearman"] < 0.95 and out["n_skipped_classes"] == 0
    assert np.nanmean(out["per_sample_spearman"]) == pytest.approx(rho, abs=1e-10)


def test_identical_embeddings_and_small_classes():
    a, _, y = _data(2)
    y = y.copy()
    y[:2] = 9  # a class of two members: skipped
    out = rank_stability(a, a.copy(), y)
    assert out["spearman"] == 1.0 and out["drift"] == 0.0
    assert out["n_skipped_classes"] == 1 and np.isnan(out["per_sample_drift"][:2]).all()
    assert np.isnan(out["per_class"][9]) and np.isnan(out["per_class"][5])


def test_reversed_ranking_has_maximal_drift():
    # One class of 3 on a circle: sample 0's two others swap order -> drift 1, spearman -1.
    ang_a = np.array([0.0, 0.3, 1.0])
    ang_b = np.array([0.0, 1.0, 0.3])
    a = np.c_[np.cos(ang_a), np.sin(ang_a)]
    b = np.c_[np.cos(ang_b), np.sin(ang_b)]
    out = rank_stability(a, b, np.zeros(3, int))
    assert out["per_sample_drift"][0] == 1.0 and out["per_sample_spearman"][0] == -1.0


def test_topk_form_on_large_classes():
    a, b, y = _data(3, n=200, c=2)
    out = rank_stability(a, b, y, topk=10)
    same = rank_stability(a, a, y, topk=10)
    assert out["topk"] == 10 and same["jaccard"] == 1.0 and same["drift"] == 0.0
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    jac, rhos = [], []
    for i in range(len(a)):
        others = np.array([j for j in np.flatnonzero(y == y[i]) if j != i])
        ta = others[np.argsort(-(an[others] @ an[i]))[:10]]
        tb = others[np.argsort(-(bn[others] @ bn[i]))[:10]]
        jac.append(len(set(ta) & set(tb)) / len(set(ta) | set(tb)))
        rhos.append(spearmanr(an[ta] @ an[i], bn[ta] @ bn[i]).statistic)
    assert out["jaccard"] == pytest.approx(np.mean(jac), abs=1e-12)
    assert out["spearman"] == pytest.approx(np.mean(rhos), abs=1e-10)
