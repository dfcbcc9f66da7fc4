import numpy as np
import pytest

from rascal_geom.metrics import attribute_consistency


def _jac(a, b):
    u = (a | b).sum()
    return np.nan if u == 0 else (a & b).sum() / u


def test_matches_loop_restatement_and_groups():
    rng = np.random.default_rng(0)
    n, c = 150, 3
    y = rng.integers(0, c, n)
    attrs = rng.random((n, 12)) < 0.3
    # Embedding correlated with the attributes inside each class.
    x = np.c_[attrs * 1.0, 0.3 * rng.standard_normal((n, 4))] + 3 * np.eye(c, 16)[y]
    groups = ["g1"] * 5 + ["g2"] * 7
    out = attribute_consistency(x, y, attrs, k=5, groups=groups, seed=0)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    vals = {"all": [], "g1": [], "g2": []}
    for i in range(n):
        others = [j for j in np.flatnonzero(y == y[i]) if j != i]
        nn = np.array(others)[np.argsort(-(xn[others] @ xn[i]), kind="stable")[:5]]
        for j in nn:
            vals["all"].append(_jac(attrs[i], attrs[j]))
            vals["g1"].append(_jac(attrs[i, :5], attrs[j, :5]))
            vals["g2"].append(_jac(attrs[i, 5:], attrs[j, 5:]))
    assert out["agreement"] == pytest.approx(np.nanmean(vals["all"]), abs=1e-6)
    assert out["per_group"]["g1"]["agreement"] == pytest.approx(np.nanmean(vals["g1"]), abs=1e-6)
    assert out["per_group"]["g2"]["agreement"] == pytest.approx(np.nanmean(vals["g2"]), abs=1e-6)
    # Random same-class pairs of independent attributes: Jaccard of two p=0.3 sets ~ 0.09/0.51.
    assert out["chance"] == pytest.approx(0.09 / 0.51, abs=0.03)
    assert out["lift"] == pytest.approx((out["agreement"] - out["chance"]) / (1 - out["chance"]))
    assert out["lift"] > 0.2
    assert np.nanmean(out["per_class"]["agreement"]) == pytest.approx(out["agreement"], abs=0.05)


def test_attributes_unrelated_to_embedding_give_no_lift():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    out = attribute_consistency(rng.standard_normal((2000, 8)), y, rng.random((2000, 20)) < 0.5,
                                k=10)
    assert abs(out["lift"]) < 0.02


def test_reports_the_k_it_used():
    rng = np.random.default_rng(3)
    y = np.array([0] * 3 + [1] * 7)
    out = attribute_consistency(rng.standard_normal((10, 4)), y, rng.random((10, 6)) < 0.5, k=10)
    assert (out["k"], out["k_requested"], out["short"], out["alone"]) == (6, 10, 10, 0)
