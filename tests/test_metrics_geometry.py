import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trust

from rascal_geom.metrics import (
    alignment,
    class_alignment,
    effective_rank,
    geometry_summary,
    neural_collapse,
    similarity_gap,
    trustworthiness,
    uniformity,
)
from rascal_train.errors import RascalError


def _data(seed=0, n=200, d=10, c=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    x = 1.5 * rng.standard_normal((c, d))[y] + rng.standard_normal((n, d))
    return x, y, x / np.linalg.norm(x, axis=1, keepdims=True)


def test_alignment_uniformity_pairs():
    x, y, xn = _data()
    d2 = ((xn[:, None] - xn[None]) ** 2).sum(-1)
    off = ~np.eye(len(x), dtype=bool)
    same = (y[:, None] == y[None]) & off
    assert class_alignment(x, y) == pytest.approx(d2[same].mean(), rel=1e-10)
    assert uniformity(x) == pytest.approx(np.log(np.exp(-2 * d2[off]).mean()), rel=1e-5)
    sub = uniformity(x, max_samples=100, seed=3)
    assert sub != uniformity(x) and abs(sub - uniformity(x)) < 0.2


def test_similarity_gap_and_margin():
    x, y, xn = _data(1)
    s = xn @ xn.T
    off = ~np.eye(len(x), dtype=bool)
    same = (y[:, None] == y[None]) & off
    diff = y[:, None] != y[None]
    out = similarity_gap(x, y)
    assert out["pos_sim"] == pytest.approx(s[same].mean(), rel=1e-10)
    assert out["neg_sim"] == pytest.approx(s[diff].mean(), rel=1e-10)
    assert out["sim_gap"] == pytest.approx(s[same].mean() - s[diff].mean(), rel=1e-10)
    viol = sum(((s[i][diff[i]]) > s[i][same[i]].min()).sum() for i in range(len(x)))
    assert out["margin_violation"] == pytest.approx(viol / diff.sum(), abs=1e-9)
    assert 0 < out["margin_violation"] < 0.5


def test_neural_collapse_restatement_and_simplex():
    x, y, _ = _data(2, d=8)
    c = 4
    mus = np.array([x[y == k].mean(0) for k in range(c)])
    mg = x.mean(0)
    sw = sum(np.outer(h - mus[k], h - mus[k]) for h, k in zip(x, y)) / len(x)
    sb = sum(np.outer(m - mg, m - mg) for m in mus) / c
    ref = np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10, hermitian=True)) / c
    out = neural_collapse(x, y)
    assert out["nc1"] == pytest.approx(ref, rel=1e-6)
    # A simplex ETF with tiny within-class spread: equinorm 0, equiangularity 0, nc1 ~ 0.
    etf = np.eye(c) - 1.0 / c
    rng = np.random.default_rng(0)
    yy = np.repeat(np.arange(c), 50)
    pts = etf[yy] + 1e-4 * rng.standard_normal((200, c))
    etf_out = neural_collapse(pts, yy)
    assert etf_out["nc1"] < 1e-6 and etf_out["equinorm"] < 1e-3
    assert etf_out["equiangularity"] < 1e-3 and etf_out["max_equiangularity"] < 1e-3


def test_effective_rank():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 6))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sv = np.linalg.svd(xn, compute_uv=False)
    p = sv / sv.sum()
    assert effective_rank(x) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-8)
    # Orthonormal rows with equal counts: exactly 3 equal singular values.
    assert effective_rank(np.tile(np.eye(5)[:3], (10, 1))) == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize("k", [5, 12])
def test_trustworthiness_matches_sklearn(k):
    rng = np.random.default_rng(k)
    hi = rng.standard_normal((150, 20))
    lo = hi[:, :2] + 0.5 * rng.standard_normal((150, 2))
    assert trustworthiness(hi, lo, k) == pytest.approx(sk_trust(hi, lo, n_neighbors=k), abs=1e-12)


def test_summary_keys():
    x, y, _ = _data(3)
    out = geometry_summary(x, y)
    assert set(out) == {"class_alignment", "uniformity", "nc1", "equinorm", "equiangularity",
                        "effective_rank", "pos_sim", "neg_sim", "sim_gap", "margin_violation"}
    assert all(np.isfinite(v) for v in out.values())


def test_alignment_is_over_two_views_of_each_image():
    # Wang & Isola: positive pairs are two views of one image, row i of each view.
    rng = np.random.default_rng(5)
    a = rng.standard_normal((64, 12))
    b = a + 0.3 * rng.standard_normal((64, 12))
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    assert alignment(a, b) == pytest.approx(np.mean([np.sum((p - q) ** 2) for p, q in zip(an, bn)]),
                                            rel=1e-12)
    assert alignment(a, a) == pytest.approx(0.0, abs=1e-12)
    assert alignment(a, -a) == pytest.approx(4.0)
    with pytest.raises(RascalError, match="two views"):
        alignment(a, b[:10])


def _margin_reference(xn, y, anchors):
    """Margin-violation rate by a plain float64 loop over the anchors."""
    violations = negatives = 0
    for i in anchors:
        positive = y == y[i]
        positive[i] = False
        weakest = (xn[positive] @ xn[i]).min()
        negative = y != y[i]
        violations += int((xn[negative] @ xn[i] > weakest).sum())
        negatives += int(negative.sum())
    return violations / negatives


def _ties(seed=0, n=300, d=6):
    """Rows with four entries of +-1: unit rows of +-0.5 after normalisation, so every cosine is a
    multiple of 1/4, exact in float32 and float64 (many ties, many duplicate rows). Labels 0..11,
    singletons 12, 13, 14 and 16, none 15, and 17 a class of two equal rows (its weakest positive
    ties with the anchor itself)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, d))
    for row in x:
        row[rng.choice(d, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
    x[n // 2:] = x[:n - n // 2]  # duplicates across and within classes
    y = rng.integers(0, 12, n)
    y[[3, 50, 200]] = [12, 13, 14]
    y[-1] = 16
    y[[10, 10 + n // 2]] = 17
    return x, y, x / 2.0


@pytest.mark.parametrize("block", [7, 2048])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_margin_violation_matches_a_plain_loop_with_ties_and_singletons(monkeypatch, block, dtype):
    from rascal_geom.metrics import geometry

    # 7 anchors per block: classes split across blocks, several blocks per class.
    monkeypatch.setattr(geometry, "_BLOCK", block)
    x, y, xn = _ties()
    counts = np.bincount(y)
    eligible = np.flatnonzero(counts[y] >= 2)
    assert len(eligible) < len(y)
    out = similarity_gap(x.astype(dtype), y, max_anchors=len(y))
    assert out["margin_violation"] == _margin_reference(xn, y, eligible)
    # A seeded subsample of the anchors: the same draw as similarity_gap documents.
    sub = np.sort(np.random.default_rng(4).choice(eligible, 50, replace=False))
    out = similarity_gap(x.astype(dtype), y, max_anchors=50, seed=4)
    assert out["margin_violation"] == _margin_reference(xn, y, sub)
    assert 0 < out["margin_violation"] < 1


def test_margin_violation_without_negatives_or_positives_is_nan():
    x, _, _ = _data(4, n=30)
    assert np.isnan(similarity_gap(x, np.zeros(30, dtype=int))["margin_violation"])
    assert np.isnan(similarity_gap(x, np.arange(30))["margin_violation"])


def test_summary_equals_the_single_metrics():
    # geometry_summary shares one pair-sum pass between class_alignment and similarity_gap.
    x, y, _ = _data(5)
    x = x.astype(np.float32)
    out = geometry_summary(x, y, seed=2)
    assert out["class_alignment"] == class_alignment(x, y)
    gap = similarity_gap(x, y, seed=2)
    assert {key: out[key] for key in gap} == gap
