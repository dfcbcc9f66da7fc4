import sys

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from rascal_geom.metrics import average_ranks, rank_stability
from rascal_train.errors import RascalError


def _data(seed, n=120, d=12, c=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    a = rng.standard_normal((n, d)) + 2 * rng.standard_normal((c, d))[y]
    b = a + 0.7 * rng.standard_normal((n, d))
    return a, b, y


def _plain(a, b, y, anchors=None):
    """Per-sample Spearman and drift, one anchor at a time in float64 with scipy's ranks.

    NaN where not measured; a constant rank row (all others tied) gets rank_stability's
    convention, as spearmanr is undefined there: 1 if both rows are equal, else NaN.
    """
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    rho, drift = np.full(len(a), np.nan), np.full(len(a), np.nan)
    for i in range(len(a)) if anchors is None else anchors:
        others = np.flatnonzero(y == y[i])
        others = others[others != i]
        if len(others) < 2:
            continue
        sa, sb = a[others] @ a[i], b[others] @ b[i]
        ra, rb = rankdata(-sa, method="average") - 1, rankdata(-sb, method="average") - 1
        drift[i] = np.abs(ra - rb).mean() / (len(others) - 1)
        if np.ptp(ra) == 0 or np.ptp(rb) == 0:
            rho[i] = 1.0 if np.array_equal(ra, rb) else np.nan
        else:
            rho[i] = spearmanr(sa, sb).statistic
    return rho, drift


def _mixed_set(seed, d=16):
    """Classes of 1 to 120 members (labels 4 and 8 absent) of two kinds, with many exact ties.

    Even labels: centre + noise, six equal rows in classes 6 and 10. Odd labels: rows of four
    +-1 entries (norm 2), whose cosines are exact multiples of 1/4 in any order of summation, so
    ties are many and the same for any product. The second embedding adds noise to the first
    kind and replaces half the rows of the second by new ones.
    """
    rng = np.random.default_rng(seed)
    sizes = {0: 1, 1: 2, 2: 3, 3: 3, 5: 7, 6: 30, 7: 61, 9: 40, 10: 120}
    y = rng.permutation(np.repeat(list(sizes), list(sizes.values())))
    a = 2 * rng.standard_normal((11, d))[y] + rng.standard_normal((len(y), d))
    lattice = y % 2 == 1

    def signs(n):
        rows = np.zeros((n, d))
        for r in rows:
            r[rng.choice(d, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
        return rows

    a[lattice] = signs(lattice.sum())
    for c in (6, 10):
        members = np.flatnonzero(y == c)
        a[members[:5]] = a[members[5]]
    b = a + 0.6 * rng.standard_normal(a.shape)
    moved = lattice & (rng.random(len(y)) < 0.5)
    b[lattice] = a[lattice]
    b[moved] = signs(moved.sum())
    return a, b, y


def test_average_ranks_equals_scipy_with_ties():
    x = np.random.default_rng(0).integers(0, 5, (50, 17)).astype(float)
    np.testing.assert_array_equal(average_ranks(x), rankdata(-x, method="average", axis=1) - 1)


def test_matches_scipy_restatement():
    a, b, y = _data(1)
    out = rank_stability(a, b, y)
    rho, drift = (np.nanmean(v) for v in _plain(a, b, y))
    assert out["spearman"] == pytest.approx(rho, abs=1e-10)
    assert out["drift"] == pytest.approx(drift, abs=1e-10)
    assert 0.2 < out["spearman"] < 0.95 and out["n_skipped_classes"] == 0
    assert np.nanmean(out["per_sample_spearman"]) == pytest.approx(rho, abs=1e-10)


@pytest.mark.parametrize("batch", [1, 700, None], ids=["unit_per_batch", "mixed_sizes", "default"])
@pytest.mark.parametrize("subset", [False, True], ids=["all", "anchors"])
def test_every_sample_equals_a_plain_scipy_loop(batch, subset, monkeypatch):
    # Batches of classes of different sizes ranked in one call (padding, each anchor's own
    # entry), classes split into anchor chunks, ties from duplicated and lattice rows.
    stability = sys.modules[rank_stability.__module__]
    monkeypatch.setattr(stability, "_ROW_CHUNK", 16)
    if batch is not None:
        monkeypatch.setattr(stability, "_BATCH_ELEMENTS", batch)
    a, b, y = _mixed_set(4)
    anchors = np.sort(np.random.default_rng(5).choice(len(y), 150, replace=False)) if subset \
        else None
    out = rank_stability(a, b, y, anchors=anchors)
    rho, drift = _plain(a, b, y, anchors)
    assert np.isnan(rho).sum() > np.isnan(drift).sum()  # a constant row with a change: NaN
    np.testing.assert_allclose(out["per_sample_spearman"], rho, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["per_sample_drift"], drift, rtol=0, atol=1e-12)
    for c in range(11):
        measured = (y == c) & np.isfinite(drift)
        want = np.nan if not np.isfinite(rho[measured]).any() else np.nanmean(rho[measured])
        assert out["per_class"][c] == pytest.approx(want, abs=1e-12, nan_ok=True)
        want = drift[measured].mean() if measured.any() else np.nan
        assert out["per_class_drift"][c] == pytest.approx(want, abs=1e-12, nan_ok=True)
    assert out["spearman"] == pytest.approx(np.nanmean(rho), abs=1e-12)
    assert out["drift"] == pytest.approx(np.nanmean(drift), abs=1e-12)
    assert out["n_samples"] == np.isfinite(drift).sum() and out["n_skipped_classes"] == 2


def test_anchors_out_of_range_are_refused():
    a, b, y = _data(6)
    with pytest.raises(RascalError, match="anchors"):
        rank_stability(a, b, y, anchors=[0, len(y)])


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
