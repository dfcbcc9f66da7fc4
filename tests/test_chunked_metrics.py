"""Metrics that walk rows in blocks give the numbers of one block; subsampled stages say so."""

import numpy as np
import pytest

from rascal_geom.metrics import _inputs, geodesic_variance, geometry_summary, knn_accuracies
from rascal_geom.metrics import attribute_consistency, hierarchy_retention, rank_stability


def _data(n=600, d=12, classes=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((classes, d))[y] + 0.7 * rng.standard_normal((n, d))
    return x.astype(np.float32), y


def _close(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _close(a[key], b[key])
    elif isinstance(a, (float, np.ndarray)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    else:
        assert a == b


@pytest.mark.parametrize("metric", ["geodesic", "geometry", "knn"])
def test_tiny_blocks_match_one_block(monkeypatch, metric):
    x, y = _data()
    run = {"geodesic": lambda: geodesic_variance(x, y),
           "geometry": lambda: geometry_summary(x, y, features=x * 3),
           "knn": lambda: knn_accuracies(x, y, (1, 5, 20))}[metric]
    whole = run()
    monkeypatch.setattr(_inputs, "BLOCK_ELEMENTS", 7 * x.shape[1])  # 7 rows per block
    assert len(_inputs.row_blocks(len(x), x.shape[1])) > 50
    _close(run(), whole)


def test_float32_rows_are_not_widened_whole():
    x, _ = _data()
    assert _inputs.kept_precision(x) is np.float32
    assert _inputs.kept_precision(x.astype(np.float64)) is np.float64
    # float32 input read in float64 blocks agrees with float64 input to float32 rounding
    y = np.arange(len(x)) % 6
    a, b = geodesic_variance(x, y)["mean"], geodesic_variance(x.astype(np.float64), y)["mean"]
    assert a == pytest.approx(b, rel=1e-5)


def test_query_subsample_averages_the_same_per_row_values():
    x, y = _data(seed=2)
    coarse = y // 2
    rows = np.arange(0, len(x), 3)
    full = hierarchy_retention(x, coarse, y, k=5)
    part = hierarchy_retention(x, coarse, y, k=5, rows=rows)
    assert part["n_queries"] == len(rows) and full["n_queries"] == len(x)
    # The rows' neighbours are still searched among every member: the subset of rows of the
    # full run's per-row results. Recompute the full run's accuracy on those rows from one search.
    from rascal_geom.metrics.knn import knn_correct
    from rascal_geom.neighbors import grouped_knn
    s, i = grouped_knn(x / np.linalg.norm(x, axis=1, keepdims=True), coarse, 5)
    correct = knn_correct(s, y[i], y, int(y.max()) + 1, 5)
    assert part["accuracy"] == pytest.approx(correct[rows].mean())
    attrs = np.random.default_rng(3).random((len(x), 8)) < 0.4
    a_full = attribute_consistency(x, y, attrs, k=4)
    a_part = attribute_consistency(x, y, attrs, k=4, rows=np.arange(len(x)))
    _close({k: a_full[k] for k in ("agreement", "chance", "lift")},
           {k: a_part[k] for k in ("agreement", "chance", "lift")})


def test_rank_stability_anchors_keep_each_anchors_value():
    x, y = _data(seed=4)
    later = x + 0.3 * np.random.default_rng(5).standard_normal(x.shape).astype(np.float32)
    full = rank_stability(x, later, y)
    anchors = np.arange(1, len(x), 4)
    part = rank_stability(x, later, y, anchors=anchors)
    np.testing.assert_allclose(part["per_sample_spearman"][anchors],
                               full["per_sample_spearman"][anchors])
    assert np.isnan(np.delete(part["per_sample_spearman"], anchors)).all()
    assert part["n_samples"] == len(anchors)
