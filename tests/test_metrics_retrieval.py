import numpy as np
import pytest

from rascal_geom.metrics import retrieval_k, retrieval_metrics, within_coarse_retrieval
from rascal_geom.neighbors import grouped_knn, knn_search
from rascal_train.errors import RascalError

_PML_KEYS = {"precision_at_1": "precision_at_1", "r_precision": "r_precision",
             "map_at_r": "mean_average_precision_at_r"}


def _data(seed=0, n=240, d=16, c=7):
    """Tie-free random clusters of uneven sizes, plus one sample alone in its class."""
    rng = np.random.default_rng(seed)
    y = np.append(rng.choice(c, n - 1, p=np.arange(1, c + 1) / (c * (c + 1) / 2)), c)
    x = 0.8 * rng.standard_normal((c + 1, d))[y] + rng.standard_normal((n, d))
    return x.astype(np.float32), y


def _pml(x, y, per_class=False):
    """pytorch-metric-learning's AccuracyCalculator on the L2-normalised rows: leave-one-out over
    the set (reference = query, so ref_includes_query), k = largest class - 1, means over
    queries."""
    pml = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    calc = pml.AccuracyCalculator(include=tuple(_PML_KEYS.values()), k="max_bin_count",
                                  avg_of_avgs=False, return_per_class=per_class, device=None)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    return calc.get_accuracy(xn, y)


def test_retrieval_matches_pytorch_metric_learning():
    x, y = _data()
    ours = retrieval_metrics(x, y)
    theirs = _pml(x, y)
    for key, pml_key in _PML_KEYS.items():
        assert ours[key] == pytest.approx(theirs[pml_key], rel=1e-9), key
    per_class = _pml(x, y, per_class=True)  # one value per label with a counted query, ascending
    counted = np.unique(y[np.bincount(y)[y] > 1])
    for key, pml_key in _PML_KEYS.items():
        assert np.allclose(ours["per_class"][key][counted], per_class[pml_key], rtol=1e-9), key
        assert np.isnan(ours["per_class"][key][7])  # the lone sample's class
    assert ours["n_queries"] == len(y) - 1 and ours["k"] == np.bincount(y).max() - 1
    assert 0.3 < ours["map_at_r"] < 0.9  # neither trivial nor hopeless, so the comparison has teeth


def test_recall_at_k_against_full_ranking():
    x, y = _data(1, n=150)
    xn = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    np.fill_diagonal(s, -np.inf)
    order = np.argsort(-s, axis=1)
    counted = np.bincount(y)[y] > 1
    out = retrieval_metrics(x, y, ks=(1, 3, 10))
    for k in (1, 3, 10):
        ref = (y[order[:, :k]] == y[:, None]).any(1)[counted].mean()
        assert out[f"recall_at_{k}"] == pytest.approx(ref, abs=1e-12)
    assert out["recall_at_1"] == out["precision_at_1"]
    # MAP@R restated with explicit loops.
    aps = []
    for i in np.flatnonzero(counted):
        r = (y == y[i]).sum() - 1
        rel = y[order[i, :r]] == y[i]
        aps.append(sum(rel[:j + 1].sum() / (j + 1) for j in range(r) if rel[j]) / r)
    assert out["map_at_r"] == pytest.approx(np.mean(aps), rel=1e-10)


def test_retrieval_reuses_a_given_search():
    x, y = _data(2)
    k = retrieval_k(y)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    wide = knn_search(xn, xn, k + 30, exclude_self=True)
    a, b = retrieval_metrics(x, y), retrieval_metrics(x, y, neighbours=wide)
    assert all(a[key] == b[key] for key in ("map_at_r", "r_precision", "recall_at_8"))
    with pytest.raises(RascalError, match=f"at least {k} neighbours"):
        retrieval_metrics(x, y, neighbours=knn_search(xn, xn, k - 1, exclude_self=True))


def test_within_coarse_retrieval_is_retrieval_inside_each_coarse_class():
    rng = np.random.default_rng(3)
    fine = rng.integers(0, 12, 300)
    coarse = fine % 4
    x = (1.5 * rng.standard_normal((4, 8))[coarse] + 0.7 * rng.standard_normal((12, 8))[fine]
         + rng.standard_normal((300, 8))).astype(np.float32)
    out = within_coarse_retrieval(x, coarse, fine)
    weights = []
    for c in range(4):
        rows = coarse == c
        theirs = _pml(x[rows], fine[rows])
        for key, pml_key in _PML_KEYS.items():
            assert out["per_class"][key][c] == pytest.approx(theirs[pml_key], rel=1e-9)
        counts = np.bincount(fine[rows])
        m = rows.sum()
        assert out["per_class"]["chance"][c] == pytest.approx(
            (counts * (counts - 1)).sum() / m / (m - 1))
        weights.append(rows.sum())
    assert out["map_at_r"] == pytest.approx(np.average(out["per_class"]["map_at_r"],
                                                       weights=weights), rel=1e-10)
    assert out["map_at_r"] > out["chance"]  # the fine offsets are visible inside each coarse class
    shared = grouped_knn(x / np.linalg.norm(x, axis=1, keepdims=True), coarse, out["k"] + 10)
    assert (within_coarse_retrieval(x, coarse, fine, neighbours=shared)["map_at_r"]
            == out["map_at_r"])
    with pytest.raises(RascalError, match="within the coarse class"):
        within_coarse_retrieval(x, coarse, fine, neighbours=(shared[0][:, :3], shared[1][:, :3]))


def test_within_coarse_retrieval_on_a_query_sample_equals_a_plain_restatement():
    rng = np.random.default_rng(4)
    fine = rng.integers(0, 12, 300)
    coarse = fine % 4
    x = (1.5 * rng.standard_normal((4, 8))[coarse] + 0.7 * rng.standard_normal((12, 8))[fine]
         + rng.standard_normal((300, 8)))
    out = within_coarse_retrieval(x, coarse, fine, max_queries=40, seed=7)
    queries = np.sort(np.random.default_rng(7).choice(300, 40, replace=False))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    ap, chance = [], []
    for q in queries:  # float64, one query at a time: rank the other members of its coarse class
        others = np.flatnonzero((coarse == coarse[q]) & (np.arange(300) != q))
        order = others[np.argsort(-(xn[others] @ xn[q]), kind="stable")]
        rel = fine[order] == fine[q]
        r = rel.sum()
        if r == 0:
            continue
        hits = rel[:r]
        ap.append((np.cumsum(hits) / np.arange(1, r + 1) * hits).sum() / r)
        chance.append(r / len(others))
    assert out["n_queries"] == len(ap)
    assert out["map_at_r"] == pytest.approx(np.mean(ap), rel=1e-6)
    assert out["chance"] == pytest.approx(np.mean(chance))
    # A sample as large as the set is every query: the exact result.
    full = within_coarse_retrieval(x, coarse, fine)
    assert within_coarse_retrieval(x, coarse, fine, max_queries=300)["map_at_r"] == full["map_at_r"]


def test_retrieval_of_a_tiny_set_clips_k():
    x = np.random.default_rng(6).standard_normal((5, 3))
    out = retrieval_metrics(x, np.array([0, 0, 1, 1, 1]), ks=(1, 8))
    assert out["k"] == 4 and out["recall_at_8"] == 1.0 and out["n_queries"] == 5


def test_retrieval_input_errors():
    x, y = _data(4, n=30)
    with pytest.raises(RascalError, match="'ks'"):
        retrieval_metrics(x, y, ks=(0, 2))
    with pytest.raises(RascalError, match="'labels'"):
        retrieval_metrics(x, y[:-1])
    with pytest.raises(RascalError, match="2 or more samples"):
        within_coarse_retrieval(x, np.arange(30), y)


def test_retrieval_on_a_query_subsample_scores_those_queries_against_all():
    x, y = _data(5, n=200)
    full = retrieval_metrics(x, y, ks=(1, 4))
    sub = retrieval_metrics(x, y, ks=(1, 4), max_queries=60, seed=1)
    chosen = np.sort(np.random.default_rng(1).choice(200, 60, replace=False))
    xn = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    np.fill_diagonal(s, -np.inf)
    order = np.argsort(-s, axis=1)
    chosen = chosen[np.bincount(y)[y[chosen]] > 1]
    assert sub["n_queries"] == len(chosen)
    assert sub["recall_at_4"] == pytest.approx(
        (y[order[chosen, :4]] == y[chosen, None]).any(1).mean(), abs=1e-12)
    assert len(sub["per_class"]["map_at_r"]) == len(full["per_class"]["map_at_r"])
    # no subsample needed
    assert retrieval_metrics(x, y, max_queries=500)["map_at_r"] == full["map_at_r"]
